//! # bevygap_shared
//!
//! What every Bevygap process agrees on: the matchmaker (`bevygap_matchmaker`), game servers
//! (`bevygap_server_plugin`) and game clients (`bevygap_client_plugin`).
//!
//! - [`names`]: NATS KV bucket names and keys, all prefixed by the app name and built in one place.
//! - [`schema`]: the records that cross NATS KV (deployment leases, seats of the seat ledger,
//!   active connections), JSON with a format version.
//! - [`protocol`]: the client channel (a `bevy_simplenet` [`ChannelPack`](bevy_simplenet::ChannelPack))
//!   and the seed-compatible JSON messages of `/matchmaker/ws`.
//! - [`edgegap`]: the parts of Edgegap's deployment object that servers and the matchmaker read.
//! - [`untrusted`]: peer-supplied text escaped and capped before it reaches a log line.
//! - [`nats`]: connecting to NATS from args or env (TLS with a custom CA, user/password or a
//!   credentials file), bucket creation, a watch that survives reconnects, and the seat ledger's
//!   compare-and-set writes. The only I/O here.
//!
//! ```
//! use bevygap_shared::names::AppNames;
//!
//! let names = AppNames::new("bevygap-spaceships").unwrap();
//! assert_eq!(names.leases_bucket(), "bevygap-spaceships_leases");
//! ```

pub mod context_env;
pub mod edgegap;
pub mod error;
pub mod names;
#[cfg(feature = "nats")]
pub mod nats;
pub mod private_key;
pub mod protocol;
pub mod schema;
pub mod secret;
#[cfg(feature = "nats")]
pub mod signals;
pub mod time;
pub mod token_data;
pub mod untrusted;

#[cfg(feature = "nats")]
pub use error::NatsError;
pub use error::{NameError, ProtocolError, SchemaError};
