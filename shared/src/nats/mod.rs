//! NATS: settings from args or env, connection, buckets and watches.
//!
//! ```no_run
//! # async fn run() -> Result<(), bevygap_shared::NatsError> {
//! use bevygap_shared::names::AppNames;
//! use bevygap_shared::nats::{BucketSpec, NatsSettings, connect, ensure_bucket};
//!
//! let settings = NatsSettings::from_env()?;
//! let nats = connect(&settings, "my-tool").await?;
//! let names = AppNames::new("bevygap-spaceships").unwrap();
//! let leases = ensure_bucket(nats.jetstream(), &BucketSpec::leases(&names)).await?;
//! # Ok(()) }
//! ```

mod buckets;
mod connect;
mod ledger;
mod settings;
mod tls;
mod watch;

pub use buckets::{BucketSpec, ensure_bucket, open_bucket};
pub use connect::{ConnectionState, NatsConnection, connect};
pub use ledger::{SeatLedger, SeatState, SeatWrite, SeatWriteError, purge_keys};
pub use settings::NatsSettings;
pub use tls::{install_crypto_provider, normalize_pem};
pub use watch::{WatchEvent, WatchHandle, spawn_reconciling_watch, spawn_watch};
