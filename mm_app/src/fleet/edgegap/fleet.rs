//! The Edgegap fleet: v2 deployments (the default) or the seed's v1 seat sessions.
//!
//! `allocate` asks Edgegap for a deployment (or a session), then polls its status with a growing
//! interval until it is ready, fails, or `ready_timeout` passes. One that fails or never becomes
//! ready is queued for removal and the allocation fails with what Edgegap said, so the waiting
//! players get a clear error instead of a silent timeout. `stop` queues the removal in the
//! persistent [`RemovalQueue`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevygap_shared::names::KeyToken;
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::{info, warn};

use super::allocations::AllocationLog;
use super::api::{DeployRequest, DeploymentUser, EnvVar, SessionRequest, Webhook};
use super::client::EdgegapClient;
use super::error::EdgegapError;
use super::removals::{RemovalQueue, RemovalTarget};
use crate::fleet::{Allocation, AllocationRequest, FleetBackend, FleetError};

/// Which Edgegap API starts servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdgegapMode {
    /// `POST /v2/deployments`: one deployment per allocation; Bevygap stops it when empty.
    #[default]
    Deployments,
    /// `POST /v1/session`: seat sessions (the seed's flow); Edgegap picks or starts the deployment.
    Sessions,
}

/// How the Edgegap fleet starts servers.
#[derive(Debug, Clone)]
pub struct EdgegapFleetConfig {
    /// The Edgegap application (usually the app name).
    pub application: String,
    /// Deployments or sessions.
    pub mode: EdgegapMode,
    /// How long a deployment may take to become ready before it is stopped.
    pub ready_timeout: Duration,
    /// First interval between status polls; it doubles up to `poll_max`.
    pub poll_first: Duration,
    /// Longest interval between status polls.
    pub poll_max: Duration,
    /// IPs to place by when the waiting players' IPs are unknown.
    pub fallback_ips: Vec<IpAddr>,
    /// Environment for every deployment (v2 only); secrets are marked hidden.
    pub env: Vec<EnvVar>,
    /// Tags for every deployment (v2 only).
    pub tags: Vec<String>,
    /// Webhook for ready, error and terminated events (v2) or session events (v1).
    pub webhook_url: Option<String>,
}

impl EdgegapFleetConfig {
    /// Deployments of `application` with the default timing.
    pub fn new(application: impl Into<String>) -> Self {
        Self {
            application: application.into(),
            mode: EdgegapMode::Deployments,
            ready_timeout: Duration::from_secs(90),
            poll_first: Duration::from_millis(500),
            poll_max: Duration::from_secs(5),
            fallback_ips: Vec::new(),
            env: Vec::new(),
            tags: vec!["bevygap".into()],
            webhook_url: None,
        }
    }
}

/// Starts and stops game servers through the Edgegap API.
#[derive(Debug, Clone)]
pub struct EdgegapFleet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: EdgegapClient,
    config: EdgegapFleetConfig,
    removals: RemovalQueue,
    /// Sessions by the deployment they are linked to (sessions mode).
    sessions: Mutex<HashMap<String, Vec<String>>>,
    /// Where allocations in flight are recorded (deployments mode), once set.
    allocations: std::sync::OnceLock<AllocationLog>,
}

/// How a poll ended.
enum Polled {
    Ready(String),
    Failed(String),
    Pending(String),
}

impl EdgegapFleet {
    /// A fleet using `client`, queuing removals in `removals`.
    pub fn new(client: EdgegapClient, config: EdgegapFleetConfig, removals: RemovalQueue) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                removals,
                sessions: Mutex::default(),
                allocations: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The same fleet, recording its allocations in `log` so another matchmaker takes them over
    /// if this one dies (see [`AllocationLog`]). A log set before is kept.
    pub fn with_allocation_log(self, log: AllocationLog) -> Self {
        let _ = self.inner.allocations.set(log);
        self
    }

    /// Takes over the allocations of matchmakers that are gone (older than `min_age`); returns
    /// how many were taken over. Nothing to do without an allocation log.
    pub async fn take_over_allocations(&self, min_age: Duration) -> Result<usize, FleetError> {
        match self.inner.allocations.get() {
            Some(log) => {
                log.sweep(&self.inner.client, &self.inner.removals, min_age)
                    .await
            }
            None => Ok(0),
        }
    }

    /// The removal queue (for inspection and tests).
    pub fn removals(&self) -> &RemovalQueue {
        &self.inner.removals
    }
}

impl Inner {
    fn ips(&self, request: &AllocationRequest) -> Result<Vec<String>, FleetError> {
        let ips = if request.client_ips.is_empty() {
            &self.config.fallback_ips
        } else {
            &request.client_ips
        };
        if ips.is_empty() {
            return Err(FleetError::Rejected(
                "Edgegap places servers near players, but no player IP is known (simplenet hides it); set --edgegap-fallback-ip to a public IP near your players".into(),
            ));
        }
        Ok(ips.iter().map(IpAddr::to_string).collect())
    }

    async fn allocate(
        self: Arc<Self>,
        request: AllocationRequest,
    ) -> Result<Allocation, FleetError> {
        let ips = self.ips(&request)?;
        match self.config.mode {
            EdgegapMode::Deployments => self.deploy(&request, ips).await,
            EdgegapMode::Sessions => self.open_session(&request, ips).await,
        }
    }

    async fn deploy(
        &self,
        request: &AllocationRequest,
        ips: Vec<String>,
    ) -> Result<Allocation, FleetError> {
        let Some(log) = self.allocations.get() else {
            return self.deploy_tagged(request, ips, None).await;
        };
        let tag = log.begin().await;
        let result = self.deploy_tagged(request, ips, Some((log, &tag))).await;
        log.end(&tag).await;
        result
    }

    async fn deploy_tagged(
        &self,
        request: &AllocationRequest,
        ips: Vec<String>,
        recorded: Option<(&AllocationLog, &str)>,
    ) -> Result<Allocation, FleetError> {
        let webhook = self.config.webhook_url.clone().map(|url| Webhook { url });
        let mut tags = self.config.tags.clone();
        if let Some((_, tag)) = recorded {
            tags.push(tag.to_owned());
        }
        let body = DeployRequest {
            application: self.config.application.clone(),
            version: request.game.version.clone(),
            users: ips.into_iter().map(DeploymentUser::ip).collect(),
            environment_variables: self.config.env.clone(),
            tags,
            webhook_on_ready: webhook.clone(),
            webhook_on_error: webhook.clone(),
            webhook_on_terminated: webhook,
        };
        let accepted = self.client.deploy(&body).await?;
        let id = accepted.request_id;
        if let Some((log, tag)) = recorded {
            log.accepted(tag, &id).await;
        }
        if KeyToken::new("request id", id.as_str()).is_err() {
            return Err(EdgegapError::Unexpected(format!(
                "deployment id `{id}` cannot be a lease key"
            ))
            .into());
        }
        info!(
            "Edgegap deployment `{id}` requested for {} {}",
            self.config.application, request.game.version
        );
        let target = RemovalTarget::Deployment(id.clone());
        self.wait_ready(&target, || async {
            let status = self.client.deployment_status(&id).await?;
            Ok(if status.is_ready() {
                Polled::Ready(id.clone())
            } else if status.has_failed() {
                Polled::Failed(format!(
                    "{}{}",
                    status.current_status,
                    status
                        .error_detail
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ))
            } else {
                Polled::Pending(status.current_status)
            })
        })
        .await
        .map(|deployment_id| Allocation {
            deployment_id,
            expected_capacity: None,
        })
    }

    async fn open_session(
        &self,
        request: &AllocationRequest,
        ips: Vec<String>,
    ) -> Result<Allocation, FleetError> {
        let body = SessionRequest {
            app_name: self.config.application.clone(),
            version_name: request.game.version.clone(),
            ip_list: ips,
            webhook_url: self.config.webhook_url.clone(),
        };
        let created = self.client.create_session(&body).await?;
        let session_id = created.session_id;
        info!(
            "Edgegap session `{session_id}` requested for {} {}",
            self.config.application, request.game.version
        );
        let target = RemovalTarget::Session(session_id.clone());
        let deployment_id = self
            .wait_ready(&target, || async {
                let session = self.client.session(&session_id).await?;
                let linked = session
                    .deployment
                    .as_ref()
                    .map(|d| d.request_id.clone())
                    .filter(|_| session.ready);
                Ok(match linked {
                    Some(id) if KeyToken::new("request id", id.as_str()).is_ok() => {
                        Polled::Ready(id)
                    }
                    Some(id) => {
                        Polled::Failed(format!("linked deployment id `{id}` cannot be a lease key"))
                    }
                    None if session.has_failed() => Polled::Failed(format!(
                        "{}{}",
                        session.status,
                        session.error.map(|e| format!(": {e}")).unwrap_or_default()
                    )),
                    None => Polled::Pending(session.status),
                })
            })
            .await?;
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(deployment_id.clone())
            .or_default()
            .push(session_id);
        Ok(Allocation {
            deployment_id,
            expected_capacity: None,
        })
    }

    /// Polls until ready; on failure or timeout queues `target`'s removal and explains.
    async fn wait_ready<F, Fut>(
        &self,
        target: &RemovalTarget,
        mut poll: F,
    ) -> Result<String, FleetError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Polled, EdgegapError>>,
    {
        let deadline = Instant::now() + self.config.ready_timeout;
        let mut interval = self.config.poll_first;
        let mut last: String;
        let failure = loop {
            match poll().await {
                Ok(Polled::Ready(id)) => {
                    info!("Edgegap {target} is ready");
                    return Ok(id);
                }
                Ok(Polled::Failed(detail)) => {
                    break format!("Edgegap reports {target} failed ({detail})");
                }
                Ok(Polled::Pending(status)) => last = status,
                Err(error) if error.is_retryable() => last = error.to_string(),
                Err(error) => break format!("could not read the status of {target}: {error}"),
            }
            let now = Instant::now();
            if now >= deadline {
                break format!(
                    "Edgegap {target} was not ready after {} s (last status: {last})",
                    self.config.ready_timeout.as_secs()
                );
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(self.config.poll_max);
        };
        warn!("{failure}; removing it");
        let queued = self
            .removals
            .push(target.clone(), "never became ready")
            .await;
        let outcome = match queued {
            Ok(()) => "it is being stopped",
            Err(_) => "stopping it failed: check NATS",
        };
        Err(FleetError::Unavailable(format!("{failure}; {outcome}")))
    }

    async fn stop(self: Arc<Self>, deployment_id: String) -> Result<(), FleetError> {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&deployment_id)
            .unwrap_or_default();
        for session in sessions {
            self.removals
                .push(RemovalTarget::Session(session), "deployment empty")
                .await?;
        }
        self.removals
            .push(
                RemovalTarget::Deployment(deployment_id),
                "stopped by the matchmaker",
            )
            .await
    }
}

impl FleetBackend for EdgegapFleet {
    fn share_budget_among(&self, processes: usize) {
        self.inner.client.share_budget_among(processes);
    }

    fn name(&self) -> &'static str {
        "edgegap"
    }

    fn allocate(
        &self,
        request: AllocationRequest,
    ) -> BoxFuture<'static, Result<Allocation, FleetError>> {
        self.inner.clone().allocate(request).boxed()
    }

    fn stop(&self, deployment_id: String) -> BoxFuture<'static, Result<(), FleetError>> {
        self.inner.clone().stop(deployment_id).boxed()
    }

    fn pending_stops(&self) -> Vec<String> {
        let mut pending = self.inner.removals.pending();
        pending.sort();
        pending
    }
}
