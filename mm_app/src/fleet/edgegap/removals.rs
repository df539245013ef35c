//! Removals (deployment stops and session deletes) queued until Edgegap confirms them.
//!
//! Each removal is written to a KV bucket before the first attempt and deleted from it once
//! Edgegap answers with success, 404 or 410. A matchmaker that restarts reads the bucket and
//! resumes what was left, so a deployment asked to stop is never forgotten and billed forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use bevygap_shared::names::KeyToken;
use bevygap_shared::schema::{KvRecord, decode, encode};
use bevygap_shared::time::{UnixMillis, now_millis};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tracing::{error, info, warn};

use super::client::{EdgegapClient, Removal};
use super::error::EdgegapError;
use super::retry::Backoff;
use crate::fleet::FleetError;

/// What to remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "target", content = "id", rename_all = "snake_case")]
pub enum RemovalTarget {
    /// A v2 deployment, stopped with `DELETE /v1/stop/{request_id}`.
    Deployment(String),
    /// A v1 seat session, deleted with `DELETE /v1/session/{session_id}`.
    Session(String),
}

impl RemovalTarget {
    /// The KV key: `deployment.{id}` or `session.{id}`; `None` when the id is not a valid key token.
    pub fn key(&self) -> Option<String> {
        let (kind, id) = match self {
            Self::Deployment(id) => ("deployment", id),
            Self::Session(id) => ("session", id),
        };
        KeyToken::new("removal id", id.as_str())
            .ok()
            .map(|id| format!("{kind}.{id}"))
    }
}

impl std::fmt::Display for RemovalTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deployment(id) => write!(f, "deployment `{id}`"),
            Self::Session(id) => write!(f, "session `{id}`"),
        }
    }
}

/// A queued removal as stored in KV.
///
/// Key: `deployment.{request_id}` or `session.{session_id}`. Sample value:
/// ```json
/// {"format":1,"kind":"fleet_removal","target":"deployment","id":"9f3a1c2b7d4e",
///  "reason":"empty past its TTL","queued_at_ms":1700000001000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRemoval {
    /// What to remove.
    #[serde(flatten)]
    pub target: RemovalTarget,
    /// Why (for logs).
    pub reason: String,
    /// When it was queued.
    pub queued_at_ms: UnixMillis,
}

impl KvRecord for QueuedRemoval {
    const KIND: &'static str = "fleet_removal";
    const FORMAT: u16 = 1;

    fn validate(&self) -> Result<(), String> {
        self.target
            .key()
            .map(|_| ())
            .ok_or_else(|| format!("{} is not a valid key token", self.target))
    }
}

/// The queue: persisted removals with one retrying task each.
#[derive(Debug, Clone)]
pub struct RemovalQueue {
    inner: Arc<QueueInner>,
}

#[derive(Debug)]
struct QueueInner {
    client: EdgegapClient,
    kv: kv::Store,
    retry: Backoff,
    in_flight: Arc<Mutex<HashMap<String, AbortHandle>>>,
}

impl Drop for QueueInner {
    fn drop(&mut self) {
        for task in lock(&self.in_flight).values() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RemovalQueue {
    /// Opens the queue on `kv` and resumes every removal a previous run left unfinished.
    /// `retry` paces the attempts of one removal; it is retried until Edgegap confirms it.
    pub async fn open(
        client: EdgegapClient,
        kv: kv::Store,
        retry: Backoff,
    ) -> Result<Self, FleetError> {
        let queue = Self {
            inner: Arc::new(QueueInner {
                client,
                kv,
                retry,
                in_flight: Arc::default(),
            }),
        };
        let keys: Vec<String> = queue
            .inner
            .kv
            .keys()
            .await
            .map_err(|e| unavailable("list queued removals", e))?
            .try_collect()
            .await
            .map_err(|e| unavailable("list queued removals", e))?;
        for key in keys {
            let entry = queue
                .inner
                .kv
                .get(&key)
                .await
                .map_err(|e| unavailable("read a queued removal", e))?;
            match entry.map(|bytes| decode::<QueuedRemoval>(&bytes)) {
                Some(Ok(removal)) => {
                    info!(
                        "resuming the removal of {} ({}) left by a previous run",
                        removal.target, removal.reason
                    );
                    queue.spawn(key, removal.target);
                }
                Some(Err(error)) => {
                    warn!("dropping unreadable queued removal `{key}`: {error}");
                    let _ = queue.inner.kv.purge(&key).await;
                }
                None => {}
            }
        }
        Ok(queue)
    }

    /// Queues a removal: persisted first, then attempted until Edgegap confirms it. Returns once
    /// it is persisted; queuing one that is already queued does nothing.
    pub async fn push(&self, target: RemovalTarget, reason: &str) -> Result<(), FleetError> {
        let Some(key) = target.key() else {
            return Err(FleetError::Rejected(format!(
                "{target} is not a valid id; refusing to call Edgegap with it"
            )));
        };
        if lock(&self.inner.in_flight).contains_key(&key) {
            return Ok(());
        }
        let record = QueuedRemoval {
            target: target.clone(),
            reason: reason.to_owned(),
            queued_at_ms: now_millis(),
        };
        self.inner
            .kv
            .put(&key, encode(&record).into())
            .await
            .map_err(|e| unavailable("persist a removal", e))?;
        self.spawn(key, target);
        Ok(())
    }

    /// Keys of the removals not yet confirmed.
    pub fn pending(&self) -> Vec<String> {
        lock(&self.inner.in_flight).keys().cloned().collect()
    }

    fn spawn(&self, key: String, target: RemovalTarget) {
        let mut in_flight = lock(&self.inner.in_flight);
        if in_flight.contains_key(&key) {
            return;
        }
        let task = tokio::spawn(remove_until_done(
            self.inner.client.clone(),
            self.inner.kv.clone(),
            self.inner.retry,
            self.inner.in_flight.clone(),
            key.clone(),
            target,
        ));
        in_flight.insert(key, task.abort_handle());
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> FleetError {
    FleetError::Unavailable(format!("NATS: could not {what}: {error}"))
}

async fn remove_until_done(
    client: EdgegapClient,
    kv: kv::Store,
    retry: Backoff,
    in_flight: Arc<Mutex<HashMap<String, AbortHandle>>>,
    key: String,
    target: RemovalTarget,
) {
    let mut attempt = 0u32;
    loop {
        let result = match &target {
            RemovalTarget::Deployment(id) => client.stop_deployment(id).await,
            RemovalTarget::Session(id) => client.delete_session(id).await,
        };
        match result {
            Ok(removal) => {
                match removal {
                    Removal::Removed => info!("Edgegap removed {target}"),
                    Removal::AlreadyGone => info!("Edgegap {target} was already gone"),
                }
                if let Err(error) = kv.purge(&key).await {
                    warn!(
                        "{target} is removed but its queue entry stays ({error}); it will be retried harmlessly after a restart"
                    );
                }
                lock(&in_flight).remove(&key);
                return;
            }
            Err(failure) => {
                attempt = attempt.saturating_add(1);
                let retry_after = match &failure {
                    EdgegapError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                let delay = retry
                    .delay(attempt, retry_after, rand::random::<f64>())
                    .max(retry.base);
                if failure.is_retryable() {
                    warn!(
                        "could not remove {target} yet ({failure}); retrying in {} ms",
                        delay.as_millis()
                    );
                } else {
                    error!(
                        "Edgegap refuses to remove {target}: {failure}; fix the cause (API key, permissions), Bevygap keeps retrying every {} s",
                        delay.as_secs().max(1)
                    );
                }
                tokio::time::sleep(delay.max(Duration::from_millis(10))).await;
            }
        }
    }
}
