//! # bevygap_loadgen
//!
//! Drives a matchmaker with many clients and reports request→result latency, throughput and
//! errors by kind. Either client protocol: the seed JSON websocket (`/matchmaker/ws`) or the
//! `bevy_simplenet` channel (`/ws`).
//!
//! Every run is bounded by a request count and a duration, and by default only loopback targets
//! are accepted.

pub mod env;
pub mod noise_floor;
pub mod queue_bench;
pub mod report;
pub mod run;
pub mod seed_client;
pub mod simplenet_client;

pub use report::{Outcome, Report};
pub use run::{LoadConfig, Protocol, run_load};

/// Opens one idle simplenet connection (for connection-count benchmarks).
pub async fn simplenet_connect(
    url: &str,
    timeout: std::time::Duration,
) -> Result<simplenet_client::SimplenetWorker, &'static str> {
    simplenet_client::SimplenetWorker::connect(
        url,
        bevygap_shared::protocol::GameRef::new(env::GAME, env::VERSION),
        timeout,
    )
    .await
}

/// Calls `bevygap/summary` on a matchmaker's inspection port (loopback), `None` on failure.
pub async fn rpc_summary(port: u16) -> Option<serde_json::Value> {
    bevygap_test_support::json_rpc(port, "bevygap/summary", serde_json::Value::Null).await
}
