//! Fleet backends: where game servers come from.
//!
//! The matchmaker asks a [`FleetBackend`] for a new deployment when no ready server has a free
//! seat, and asks it to stop a deployment that stayed empty past its TTL. A deployment counts as
//! ready only when its game server writes its lease to NATS KV; the backend just starts and stops.
//!
//! Backends: [`local::LocalFleet`] (game server processes on this machine, the default) and
//! [`static_list::StaticFleet`] (servers someone else runs). The trait is object-safe and async
//! through boxed futures, so an HTTP backend (Edgegap) fits the same shape.

pub mod edgegap;
pub mod local;
pub mod static_list;

use std::net::IpAddr;
use std::sync::Arc;

use bevygap_shared::protocol::GameRef;
use futures::future::BoxFuture;
use thiserror::Error;

/// What the matchmaker needs a new deployment for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    /// The game and version to run.
    pub game: GameRef,
    /// IPs of the players waiting, for backends that place by geography.
    pub client_ips: Vec<IpAddr>,
    /// The best region the players measured, if any.
    pub region_hint: Option<String>,
}

/// A deployment the backend has started (or is starting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The deployment id the game server will use as its lease key (a valid
    /// [`KeyToken`](bevygap_shared::names::KeyToken)).
    pub deployment_id: String,
    /// Seats the server is expected to offer, if the backend knows (the lease is authoritative).
    pub expected_capacity: Option<u32>,
}

/// Why a backend could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The backend cannot start more servers now (limit reached, static fleet, provider capacity).
    #[error("no capacity: {0}")]
    NoCapacity(String),
    /// The backend refused the request as invalid (bad app/version, bad configuration).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The backend failed in a way that may pass (process spawn failure, provider outage).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deployment is not known to the backend (already stopped counts as success for `stop`).
    #[error("unknown deployment `{0}`")]
    UnknownDeployment(String),
}

/// Told when a deployment ends on its own (its process exited, the provider failed it).
#[derive(Clone)]
pub struct EndedReporter(Arc<dyn Fn(String, String) + Send + Sync>);

impl EndedReporter {
    /// A reporter calling `report(deployment_id, what_happened)`.
    pub fn new(report: impl Fn(String, String) + Send + Sync + 'static) -> Self {
        Self(Arc::new(report))
    }

    /// Reports that `deployment_id` ended, and how.
    pub fn report(&self, deployment_id: String, how: String) {
        (self.0)(deployment_id, how);
    }
}

impl std::fmt::Debug for EndedReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndedReporter")
    }
}

/// A source of game servers. Implementations must be cheap to call from the matchmaker: the
/// returned futures run on the tokio runtime, never on the Bevy schedule.
pub trait FleetBackend: Send + Sync + 'static {
    /// Short name for logs and inspection (`local`, `static`, `edgegap`).
    fn name(&self) -> &'static str;

    /// Starts a new deployment. Resolves once the backend has accepted the request; the server is
    /// ready when its lease appears in KV.
    fn allocate(
        &self,
        request: AllocationRequest,
    ) -> BoxFuture<'static, Result<Allocation, FleetError>>;

    /// Stops a deployment. Stopping one this backend started and that is already gone succeeds;
    /// one it never heard of is [`FleetError::UnknownDeployment`].
    fn stop(&self, deployment_id: String) -> BoxFuture<'static, Result<(), FleetError>>;

    /// Whether this backend stops servers (scale to zero). A fleet that never does keeps its
    /// empty servers ready instead of closing them.
    fn stops_servers(&self) -> bool {
        true
    }

    /// Told how many matchmakers share this fleet's provider account now (including this one),
    /// so a rate-limited backend takes only its part of the provider's budget.
    fn share_budget_among(&self, _processes: usize) {}

    /// Called once when the matchmaker stops gracefully: a backend whose servers cannot outlive
    /// it (local processes) stops them, so they remove their leases instead of lingering.
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// Removals asked for but not yet confirmed by the provider (for inspection).
    fn pending_stops(&self) -> Vec<String> {
        Vec::new()
    }

    /// Where to report deployments that end without being asked to stop; backends that cannot
    /// tell ignore it (the lease TTL and allocation timeout cover them).
    fn report_ended(&self, _reporter: EndedReporter) {}
}
