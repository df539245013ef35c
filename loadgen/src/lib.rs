//! # bevygap_loadgen
//!
//! Drives a matchmaker with many clients and reports request→result latency, throughput and
//! errors by kind. Either client protocol: the seed JSON websocket (`/matchmaker/ws`) or the
//! `bevy_simplenet` channel (`/ws`).
//!
//! Every run is bounded by a request count and a duration, and by default only loopback targets
//! are accepted.

pub mod env;
pub mod report;
pub mod run;
pub mod seed_client;
mod simplenet_client;

pub use report::{Outcome, Report};
pub use run::{LoadConfig, Protocol, run_load};
