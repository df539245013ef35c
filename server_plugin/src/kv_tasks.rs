//! The game server's NATS side: its lease with heartbeat, its seats in the seat ledger feeding
//! admission, and the active-connection keys. Async functions, run on tokio; nothing here panics
//! on NATS trouble.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use bevygap_shared::names::{client_key, deployment_filter, lease_key, parse_seat_key, seat_key};
use bevygap_shared::nats::{
    BucketSpec, NatsConnection, SeatLedger, SeatWriteError, WatchEvent, spawn_watch,
};
use bevygap_shared::schema::{
    ActiveConnection, DeploymentLease, SeatHolder, SeatRecord, decode, encode,
};
use bevygap_shared::time::now_millis;
use tokio::sync::{Notify, watch};
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
/// `lease` is the template; `players` (the count of connected clients) and `backfill` (the
/// players asked for) are read at each heartbeat, and a new backfill is written at once. Failed
/// writes are logged and retried at the next beat; `ready` turns true after the first successful
/// write.
pub async fn run_lease(
    store: kv::Store,
    mut lease: DeploymentLease,
    players: watch::Receiver<u32>,
    mut backfill: watch::Receiver<Option<bevygap_shared::schema::LeaseBackfill>>,
    interval: Duration,
    ready: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let key = lease.deployment_id.clone();
    let mut failing = false;
    loop {
        lease.players = *players.borrow();
        lease.backfill = backfill.borrow_and_update().clone();
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
            _ = backfill.changed() => {}
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
        backfill: None,
    }
}

/// The shortest pause between two direct reads of this deployment's seats (see
/// [`watch_seats`]): knocks inside it share one read.
const LOOKUP_PAUSE: Duration = Duration::from_millis(100);

/// Feeds this deployment's seats into the admission table until the task is dropped.
///
/// The KV watch delivers every change. When a client knocks whose reservation the table does not
/// hold yet, the gate rings `lookups`, and every seat is read from the stream leader: the watch
/// can trail the ledger by seconds while a NATS node fails over, and the client's next attempt
/// then finds its seat.
///
/// Seats the first listing shows as connected belong to an earlier process with this id (a
/// restarted static server): nobody is connected to a process that just started, so they are
/// freed, and the matchmaker does not count phantom players.
pub async fn watch_seats(
    nats: NatsConnection,
    ledger: SeatLedger,
    context: DeploymentContext,
    admission: SharedAdmission,
    lookups: Arc<Notify>,
) {
    let filter = deployment_filter(&context.deployment_id);
    let mut watch = spawn_watch(&nats, ledger.store().clone(), filter, 1024);
    let mut first_listing = true;
    let mut lookup_after = tokio::time::Instant::now();
    loop {
        let event = tokio::select! {
            event = watch.events.recv() => event,
            () = lookups.notified() => {
                tokio::time::sleep_until(lookup_after).await;
                look_up_seats(&ledger, &context, &admission).await;
                lookup_after = tokio::time::Instant::now() + LOOKUP_PAUSE;
                continue;
            }
        };
        let Some(event) = event else { return };
        match event {
            WatchEvent::Put {
                key,
                value,
                revision,
            } => {
                let Some((_, seat)) = parse_seat_key(&key) else {
                    continue;
                };
                let record = decode::<SeatRecord>(&value);
                if let Err(error) = &record {
                    warn!("ignoring seat `{key}`: {error}");
                }
                let record = record.ok();
                seat_seen(&admission, seat, revision, record.as_ref());
                if first_listing
                    && record
                        .as_ref()
                        .is_some_and(|r| matches!(r.holder, SeatHolder::Connected { .. }))
                {
                    info!("seat {seat} was held by a client of an earlier run; freeing it");
                    if let Err(error) = ledger.free(&key, revision, BucketSpec::MARKER_TTL).await {
                        debug!("stale seat `{key}` not freed: {error}");
                    }
                }
            }
            WatchEvent::Removed { key, revision } => {
                if let Some((_, seat)) = parse_seat_key(&key) {
                    lock(&admission).seat_changed(seat, revision);
                }
            }
            WatchEvent::Synced => first_listing = false,
            WatchEvent::SyncStarted | WatchEvent::Reconciling => {}
        }
    }
}

/// Applies one seat's state, seen at `revision`, to the admission table.
fn seat_seen(admission: &SharedAdmission, seat: u32, revision: u64, record: Option<&SeatRecord>) {
    match record.and_then(SeatRecord::reservation) {
        Some(reservation) => {
            debug!("seat {seat} reserved for client {}", reservation.client_id);
            lock(admission).reservation_added(seat, revision, reservation);
        }
        None => lock(admission).seat_changed(seat, revision),
    }
}

/// Reads every seat of this deployment from the stream leader into the admission table.
pub async fn look_up_seats(
    ledger: &SeatLedger,
    context: &DeploymentContext,
    admission: &SharedAdmission,
) {
    for seat in 0..context.capacity {
        let key = seat_key(&context.deployment_id, seat);
        match ledger.current(&key).await {
            Ok(state) => seat_seen(admission, seat, state.revision, state.record.as_ref()),
            Err(error) => {
                debug!(
                    "seats not read from the ledger ({error}); the watch or the next knock brings them"
                );
                return;
            }
        }
    }
}

/// Why a connected client could not take its seat: it must be let go, or the server would hold
/// more players than the ledger sold.
#[derive(Debug, Clone, thiserror::Error)]
#[error("client {client_id} cannot take seat {seat}: {source}")]
pub struct SeatLost {
    /// The client.
    pub client_id: u64,
    /// The seat.
    pub seat: u32,
    /// What the ledger said.
    #[source]
    pub source: SeatWriteError,
}

/// How long the recorder waits before trying a failed write again.
pub const RECORD_RETRY: Duration = Duration::from_millis(500);

/// Writes this server's seat changes and active-connection keys.
#[derive(Clone)]
pub struct ConnectionRecorder {
    /// The connections bucket.
    pub connections: kv::Store,
    /// The seat ledger.
    pub seats: SeatLedger,
    /// This server's context.
    pub context: DeploymentContext,
}

impl ConnectionRecorder {
    /// Takes a client's seat: reserved → connected, by compare-and-set on the revision admitted.
    /// Returns the seat's new revision. A conflict that shows this client already connected on
    /// the seat (an earlier attempt landed, its answer lost with the connection) counts as taken.
    pub async fn take_seat(
        &self,
        client_id: u64,
        reservation_id: &str,
        seat: u32,
        revision: u64,
    ) -> Result<u64, SeatWriteError> {
        let record = SeatRecord {
            deployment_id: self.context.deployment_id.to_string(),
            seat,
            holder: SeatHolder::Connected {
                reservation_id: reservation_id.to_owned(),
                client_id,
                connected_at_ms: now_millis(),
            },
        };
        match self.seats.take(&record, revision, None).await {
            Ok(written) => Ok(written.revision),
            Err(SeatWriteError::Conflict {
                current: Some(current),
                ..
            }) if current.record.as_ref().is_some_and(|r| {
                matches!(&r.holder, SeatHolder::Connected { client_id: c, reservation_id: id, .. }
                    if *c == client_id && id == reservation_id)
            }) =>
            {
                Ok(current.revision)
            }
            Err(error) => Err(error),
        }
    }

    /// Writes a connected client's connection key.
    pub async fn record_connection(
        &self,
        client_id: u64,
        reservation_id: &str,
    ) -> Result<(), String> {
        let key = client_key(&self.context.deployment_id, client_id);
        let connection = ActiveConnection {
            deployment_id: self.context.deployment_id.to_string(),
            client_id,
            reservation_id: reservation_id.to_owned(),
            connected_at_ms: now_millis(),
        };
        self.connections
            .put(key.as_str(), encode(&connection).into())
            .await
            .map(|_| ())
            .map_err(|e| format!("connection `{key}` not written: {e}"))
    }

    /// Frees a seat held at `revision`; a seat someone else changed since is left to them.
    pub async fn free_seat(&self, seat: u32, revision: u64) -> Result<(), SeatWriteError> {
        let key = seat_key(&self.context.deployment_id, seat);
        match self
            .seats
            .free(&key, revision, BucketSpec::MARKER_TTL)
            .await
        {
            Ok(()) | Err(SeatWriteError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Removes a client's connection key.
    pub async fn forget_connection(&self, client_id: u64) -> Result<(), String> {
        let key = client_key(&self.context.deployment_id, client_id);
        self.connections
            .purge_with_ttl(key.as_str(), BucketSpec::MARKER_TTL)
            .await
            .map_err(|e| format!("connection `{key}` not removed: {e}"))
    }
}

/// A seat change for the recorder task, in the order the game saw them.
#[derive(Debug, Clone)]
pub enum SeatCommand {
    /// A client was admitted to `seat`, reserved at `revision`.
    Opened {
        /// The client.
        client_id: u64,
        /// Its reservation.
        reservation_id: String,
        /// Its seat.
        seat: u32,
        /// The seat's revision when admitted.
        revision: u64,
    },
    /// The client left.
    Closed {
        /// The client.
        client_id: u64,
        /// Its seat.
        seat: u32,
    },
}

/// Where one client's records stand.
#[derive(Debug)]
struct ClientRecords {
    seat: u32,
    reservation_id: String,
    /// The revision admitted at until the seat is taken, then the revision held.
    revision: u64,
    taken: bool,
    recorded: bool,
    left: bool,
    /// A write failed and waits for the next retry.
    failing: bool,
}

/// What one step of a client's records came to.
enum Progress {
    /// Everything written for now (the client plays, or is gone and forgotten).
    Settled,
    /// A write failed on NATS: try again after [`RECORD_RETRY`].
    Retry,
    /// The client's records are finished with (it left, or lost its seat).
    Done,
}

/// Applies seat commands, one client's changes in the order the game saw them, and retries
/// writes that failed on NATS until they land (a client that connected during an outage is
/// recorded when NATS returns; a seat it left is freed then). Clients whose seat was taken by
/// someone else are reported on `lost`; `unsaved` counts the clients with a write waiting.
pub async fn run_recorder(
    recorder: ConnectionRecorder,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<SeatCommand>,
    lost: tokio::sync::mpsc::UnboundedSender<SeatLost>,
    unsaved: watch::Sender<usize>,
) {
    let mut clients: std::collections::HashMap<u64, ClientRecords> =
        std::collections::HashMap::new();
    loop {
        let retrying = clients.values().any(|c| c.failing);
        let client_id = tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(SeatCommand::Opened { client_id, reservation_id, seat, revision }) => {
                    clients.insert(client_id, ClientRecords {
                        seat,
                        reservation_id,
                        revision,
                        taken: false,
                        recorded: false,
                        left: false,
                        failing: false,
                    });
                    Some(client_id)
                }
                Some(SeatCommand::Closed { client_id, .. }) => {
                    if let Some(client) = clients.get_mut(&client_id) {
                        client.left = true;
                    }
                    Some(client_id)
                }
            },
            () = tokio::time::sleep(RECORD_RETRY), if retrying => None,
        };
        let due: Vec<u64> = match client_id {
            Some(id) => vec![id],
            None => clients
                .iter()
                .filter(|(_, c)| c.failing)
                .map(|(id, _)| *id)
                .collect(),
        };
        for id in due {
            let Some(client) = clients.get_mut(&id) else {
                continue;
            };
            match advance(&recorder, id, client, &lost).await {
                Progress::Settled => {}
                Progress::Retry => client.failing = true,
                Progress::Done => {
                    clients.remove(&id);
                }
            }
        }
        let waiting = clients.values().filter(|c| c.failing).count();
        unsaved.send_if_modified(|n| std::mem::replace(n, waiting) != waiting);
    }
}

/// Writes what is missing of one client's records.
async fn advance(
    recorder: &ConnectionRecorder,
    client_id: u64,
    client: &mut ClientRecords,
    lost: &tokio::sync::mpsc::UnboundedSender<SeatLost>,
) -> Progress {
    let was_failing = std::mem::take(&mut client.failing);
    let retry = |what: String| {
        if !was_failing {
            warn!("{what}; retrying every {RECORD_RETRY:?} until NATS takes it");
        }
        Progress::Retry
    };
    if !client.taken {
        match recorder
            .take_seat(
                client_id,
                &client.reservation_id,
                client.seat,
                client.revision,
            )
            .await
        {
            Ok(revision) => {
                client.taken = true;
                client.revision = revision;
            }
            Err(SeatWriteError::Unavailable { reason, .. }) => {
                return retry(format!(
                    "seat {} of client {client_id} not taken ({reason})",
                    client.seat
                ));
            }
            Err(source) => {
                let seat_lost = SeatLost {
                    client_id,
                    seat: client.seat,
                    source,
                };
                if !client.left {
                    warn!("{seat_lost}; disconnecting it");
                    let _ = lost.send(seat_lost);
                }
                return Progress::Done;
            }
        }
    }
    if client.left {
        if let Err(error) = recorder.free_seat(client.seat, client.revision).await {
            return retry(format!(
                "seat {} of client {client_id} not freed ({error})",
                client.seat
            ));
        }
        if let Err(error) = recorder.forget_connection(client_id).await {
            return retry(error);
        }
        if was_failing {
            info!("client {client_id}: its seat is freed now that NATS is back");
        }
        return Progress::Done;
    }
    if !client.recorded {
        if let Err(error) = recorder
            .record_connection(client_id, &client.reservation_id)
            .await
        {
            return retry(error);
        }
        client.recorded = true;
        if was_failing {
            info!("client {client_id}: connection recorded now that NATS is back");
        }
    }
    Progress::Settled
}
