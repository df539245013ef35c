//! The game server's NATS side: its lease with heartbeat, the reservations feeding admission, and
//! the active-connection keys. Async functions, run on tokio; nothing here panics on NATS trouble.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use bevygap_shared::names::{client_key, deployment_filter, lease_key, parse_client_key};
use bevygap_shared::nats::{NatsConnection, WatchEvent, spawn_watch};
use bevygap_shared::schema::{ActiveConnection, DeploymentLease, Reservation, decode, encode};
use bevygap_shared::time::now_millis;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::admission::Admission;
use crate::context::DeploymentContext;

/// Shared admission table: fed by the reservation watch, read by the connection request handler.
pub type SharedAdmission = Arc<Mutex<Admission>>;

/// Locks the table, surviving a poisoned lock (a panic elsewhere must not stop admissions).
pub fn lock(admission: &SharedAdmission) -> std::sync::MutexGuard<'_, Admission> {
    admission.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the lease fresh every `interval` until `stop` turns true, then deletes it.
///
/// `lease` is the template; `players` is read at each heartbeat. Failed writes are logged and
/// retried at the next beat; `ready` turns true after the first successful write.
pub async fn run_lease(
    store: kv::Store,
    mut lease: DeploymentLease,
    players: Arc<AtomicU32>,
    interval: Duration,
    ready: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let key = lease.deployment_id.clone();
    let mut failing = false;
    loop {
        lease.players = players.load(Ordering::Relaxed);
        lease.heartbeat_at_ms = now_millis();
        match store.put(key.as_str(), encode(&lease).into()).await {
            Ok(_) => {
                if failing || !*ready.borrow() {
                    info!(
                        "lease `{key}` written ({} of {} seats taken)",
                        lease.players, lease.capacity
                    );
                }
                failing = false;
                ready.send_replace(true);
            }
            Err(error) => {
                if !failing {
                    warn!(
                        "lease `{key}` could not be written ({error}); players stay connected, retrying"
                    );
                }
                failing = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            changed = stop.wait_for(|s| *s) => {
                if changed.is_ok() {
                    break;
                }
            }
        }
    }
    match store.delete(key.as_str()).await {
        Ok(()) => info!("lease `{key}` removed on shutdown"),
        Err(error) => warn!("lease `{key}` could not be removed ({error}); it lapses by TTL"),
    }
}

/// The lease this server writes, from its context.
pub fn lease_for(
    context: &DeploymentContext,
    transport: bevygap_shared::schema::Transport,
    cert_digest: Option<bevygap_shared::schema::CertDigest>,
) -> DeploymentLease {
    let now = now_millis();
    DeploymentLease {
        deployment_id: lease_key(&context.deployment_id),
        game: context.app_name.clone(),
        game_version: context.app_version.clone(),
        public_addr: context.public_addr,
        fqdn: context.fqdn.clone(),
        transport,
        cert_digest,
        capacity: context.capacity,
        players: 0,
        location: context.location.clone(),
        started_at_ms: now,
        heartbeat_at_ms: now,
        accepting: true,
    }
}

/// Feeds this deployment's reservations into the admission table until the task is dropped.
pub async fn watch_reservations(
    nats: NatsConnection,
    store: kv::Store,
    context: DeploymentContext,
    admission: SharedAdmission,
) {
    let filter = deployment_filter(&context.deployment_id);
    let mut watch = spawn_watch(&nats, store, filter, 1024);
    while let Some(event) = watch.events.recv().await {
        match event {
            WatchEvent::Put { key, value, .. } => match decode::<Reservation>(&value) {
                Ok(reservation) => {
                    debug!("reservation for client {} received", reservation.client_id);
                    lock(&admission).reservation_added(reservation);
                }
                Err(error) => warn!("ignoring reservation `{key}`: {error}"),
            },
            WatchEvent::Removed { key, .. } => {
                if let Some((_, client_id)) = parse_client_key(&key) {
                    lock(&admission).reservation_removed(client_id);
                }
            }
            WatchEvent::SyncStarted | WatchEvent::Synced => {}
        }
    }
}

/// Writes and removes this server's active-connection keys, and deletes consumed reservations.
#[derive(Clone)]
pub struct ConnectionRecorder {
    /// The connections bucket.
    pub connections: kv::Store,
    /// The reservations bucket.
    pub reservations: kv::Store,
    /// This server's context.
    pub context: DeploymentContext,
}

impl ConnectionRecorder {
    /// Records a connected client: writes its connection key and deletes its reservation.
    pub async fn opened(&self, client_id: u64, reservation_id: String) {
        let key = client_key(&self.context.deployment_id, client_id);
        let record = ActiveConnection {
            deployment_id: self.context.deployment_id.to_string(),
            client_id,
            reservation_id,
            connected_at_ms: now_millis(),
        };
        if let Err(error) = self
            .connections
            .put(key.as_str(), encode(&record).into())
            .await
        {
            warn!(
                "connection `{key}` could not be recorded ({error}); the matchmaker may count the seat as reserved until it expires"
            );
        }
        if let Err(error) = self.reservations.delete(key.as_str()).await {
            debug!("reservation `{key}` could not be deleted ({error}); it lapses by TTL");
        }
    }

    /// Records a client that left: deletes its connection key.
    pub async fn closed(&self, client_id: u64) {
        let key = client_key(&self.context.deployment_id, client_id);
        if let Err(error) = self.connections.delete(key.as_str()).await {
            warn!(
                "connection `{key}` could not be removed ({error}); retrying is up to the next start"
            );
        }
    }
}
