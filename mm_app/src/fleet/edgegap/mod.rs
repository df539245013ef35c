//! The Edgegap fleet backend: Edgegap's HTTP API through `reqwest`.
//!
//! - [`client`]: one method per endpoint, the `Authorization: token …` header, client-side rate
//!   limits below Edgegap's, and retries with backoff and jitter of retryable failures;
//! - [`error`]: every status code as a typed [`error::EdgegapError`];
//! - [`fleet`]: [`fleet::EdgegapFleet`], the [`FleetBackend`](crate::fleet::FleetBackend) over v2
//!   deployments or the seed's v1 seat sessions;
//! - [`removals`]: stops and session deletes persisted in KV and retried until done;
//! - [`allocations`]: allocations recorded in KV before the API call, taken over by another
//!   matchmaker when theirs dies;
//! - [`checks`]: start-up checks of the app and versions;
//! - [`env`]: what deployments inherit from the matchmaker's configuration;
//! - [`operator`]: the jobs of the `bevygap_edgegap` operator command.

pub mod allocations;
pub mod api;
pub mod checks;
pub mod client;
pub mod env;
pub mod error;
pub mod fleet;
pub mod operator;
pub mod removals;
pub mod retry;
