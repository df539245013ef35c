//! An offline replica of the Edgegap API endpoints Bevygap uses.
//!
//! The Edgegap cloud cannot be reached from development machines and CI, so Bevygap's Edgegap
//! backend is tested against this replica. It serves, with Edgegap's field names and status codes:
//!
//! | endpoint | what it does |
//! |---|---|
//! | `POST /v2/deployments` | 202 `{"request_id"}`; the deployment goes `Status.DEPLOYING` → `Status.READY` |
//! | `GET /v1/status/{request_id}` | the deployment's status, public IP, FQDN and ports |
//! | `DELETE /v1/stop/{request_id}` | 200 (202 while deploying); 410 once terminated, 404 if unknown |
//! | `POST /v1/session` | a seat session, `Status.SEEKING` → `Status.LINKED` → `Status.READY` |
//! | `GET /v1/session/{id}`, `DELETE /v1/session/{id}` | the session and its deployment; 404 if unknown |
//! | `GET /v1/app/{app}`, `GET`/`PATCH /v1/app/{app}/version/{version}` | the configured apps |
//! | `GET /v1/deployments?page=&limit=` | the deployments not terminated, paginated |
//! | `GET /v1/context/{request_id}/{n}` | the context API a deployment reads with its context token |
//!
//! Management endpoints need `Authorization: token {api_key}`. Edgegap's documented rate limits
//! (deploy 40/s, status 20/s, list 10/s) answer 429 when exceeded. Errors can be injected per route
//! ([`ReplicaHandle::inject`], or `POST /_replica/faults`), and the time to ready is configurable
//! or infinite. With a [`Launcher`], each deployment starts a real local game server process
//! with the `ARBITRIUM_*` environment Edgegap gives containers.

mod apps;
mod deployments;
mod faults;
mod launcher;
mod relay;
mod routes;
mod sessions;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use apps::{AppSpec, VersionSpec};
pub use deployments::DeploymentView;
pub use faults::{Injected, Route};
pub use launcher::Launcher;
pub use state::CallRecord;

use state::State;

/// How the replica behaves.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The API key clients must send (`Authorization: token {api_key}`).
    pub api_key: String,
    /// The applications and versions that exist.
    pub apps: Vec<AppSpec>,
    /// Time from `POST /v2/deployments` to `Status.READY`; `None` never becomes ready.
    pub ready_after: Option<Duration>,
    /// Deployments end in `Status.ERROR` instead of becoming ready.
    pub fail_deployments: bool,
    /// Seats per deployment for seat sessions.
    pub sockets: u32,
    /// Answer 429 above Edgegap's documented rate limits.
    pub enforce_rate_limits: bool,
    /// Start real game server processes for deployments.
    pub launcher: Option<Launcher>,
    /// Largest page `GET /v1/deployments` answers, whatever `limit` asks.
    pub max_page_size: usize,
    /// Where to listen (loopback).
    pub listen: SocketAddr,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            api_key: "replica-key".into(),
            apps: Vec::new(),
            ready_after: Some(Duration::from_millis(200)),
            fail_deployments: false,
            sockets: 8,
            enforce_rate_limits: true,
            launcher: None,
            max_page_size: 100,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Why the replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running replica; stops (and stops its game servers) when dropped.
#[derive(Debug)]
pub struct ReplicaHandle {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl ReplicaHandle {
    /// The base URL to give the Edgegap client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next `count` calls of `route` answer `status` (before any other checks but auth).
    pub fn inject(&self, route: Route, status: u16, count: usize) {
        self.state.faults.inject(route, status, count);
    }

    /// The next `count` calls of `route` answer `status` with `body` as it is (malformed,
    /// truncated or oversized answers).
    pub fn inject_body(&self, route: Route, status: u16, body: impl Into<String>, count: usize) {
        self.state.faults.inject_answer(
            route,
            Injected {
                status,
                body: Some(body.into()),
            },
            count,
        );
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Changes the time to ready of deployments created from now on (`None`: never ready).
    pub fn set_ready_after(&self, ready_after: Option<Duration>) {
        self.state.set_ready_after(ready_after);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.state.calls()
    }

    /// Every deployment so far, terminated ones included.
    pub fn deployments(&self) -> Vec<DeploymentView> {
        self.state.deployment_views()
    }
}

impl Drop for ReplicaHandle {
    fn drop(&mut self) {
        self.server.abort();
        self.state.stop_all_processes();
    }
}

/// Starts the replica on the current tokio runtime.
pub async fn start(config: ReplicaConfig) -> Result<ReplicaHandle, ReplicaError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ReplicaError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ReplicaError::Bind {
        addr: config.listen,
        source,
    })?;
    let state = Arc::new(State::new(config, addr));
    let router = routes::router(state.clone());
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!("Edgegap replica stopped serving: {error}");
        }
    });
    Ok(ReplicaHandle {
        addr,
        state,
        server,
    })
}
