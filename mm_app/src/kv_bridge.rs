//! The KV bridge: NATS KV watches become core messages; the core's ledger writes go to KV.
//!
//! | bucket | truth it holds | written by | read here |
//! |---|---|---|---|
//! | `{app}_leases` | which game servers are up, where, with how many seats | game servers (heartbeat) | watched → [`LeaseChanged`] |
//! | `{app}_reservations` | the seat ledger: who holds each seat | matchmakers (reserve, close), game servers (connect, leave) | watched → [`SeatChanged`]; written by compare-and-set |
//! | `{app}_connections` | which clients are connected (for operators and tools) | game servers | purged with a gone deployment |
//! | `{app}_matchmakers` | which matchmakers are running | each matchmaker (heartbeat) | counted ([`crate::presence`]) |
//! | `{app}_queue_tickets` | queue tickets waiting or in a match | matchmakers (publish, claim by compare-and-set, answer) | watched by [`crate::queues::pool`] |
//!
//! Both watches list the current state first, then follow live changes; after a NATS failure and
//! every [`RECONCILE_EVERY`] they list again, and keys that vanished meanwhile are reported as
//! removed, so the mirror converges on KV instead of keeping stale state. Until the first listing
//! of both is complete the core sells nothing ([`LedgerSync`]).

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::kv;
use bevy::prelude::*;
use bevygap_shared::names::{AppNames, KeyToken, deployment_filter, parse_seat_key, seat_key};
use bevygap_shared::nats::{
    BucketSpec, NatsConnection, SeatLedger, SeatWriteError, WatchEvent, ensure_bucket, purge_keys,
    spawn_reconciling_watch,
};
use bevygap_shared::schema::{DeploymentLease, SeatHolder, SeatRecord, decode};
use bevygap_shared::time::now_millis;
use futures::StreamExt;

use crate::bridge::{Inbox, InboxSender, add_inbox};
use crate::core_plugin::CoreSystems;
use crate::messages::{
    CloseDeployment, DeploymentClosed, FreeSeat, LeaseChanged, LedgerSync, MirrorOf,
    PurgeDeployment, ReservationStored, SeatChanged, SeatStoreError, StoreReservation,
};
use crate::runtime::AsyncRuntime;

/// How often the watches list everything again while healthy (a safety net: a consumer the
/// client library recreated silently would otherwise never show purges made meanwhile).
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// How long the seats closed by a stop stay closed if the stop never finishes (a matchmaker
/// that dies half-way): long enough for any fleet to stop a server, short enough to recover.
pub const CLOSING_TTL: Duration = Duration::from_secs(120);

/// The buckets the matchmaker uses, created (or brought to these settings) at start-up. The
/// matchmaker owns their settings; game servers open them as they are.
#[derive(Clone)]
pub struct KvStores {
    /// Game server leases.
    pub leases: kv::Store,
    /// The seat ledger.
    pub seats: SeatLedger,
    /// Active connections written by game servers.
    pub connections: kv::Store,
    /// Live matchmakers (presence by heartbeat).
    pub matchmakers: kv::Store,
    /// Queue tickets pooled by the matchmakers.
    pub queue_tickets: kv::Store,
}

impl KvStores {
    /// Creates (or opens and updates) the three buckets of an app, each with `replicas` copies
    /// (1 on a single NATS server; 3 in a three-node cluster).
    pub async fn open(
        nats: &NatsConnection,
        names: &AppNames,
        replicas: usize,
    ) -> Result<Self, bevygap_shared::NatsError> {
        let js = nats.jetstream();
        let seats = ensure_bucket(js, &BucketSpec::seats(names).with_replicas(replicas)).await?;
        Ok(Self {
            leases: ensure_bucket(js, &BucketSpec::leases(names).with_replicas(replicas)).await?,
            seats: SeatLedger::new(seats, js.clone()),
            connections: ensure_bucket(js, &BucketSpec::connections(names).with_replicas(replicas))
                .await?,
            matchmakers: ensure_bucket(js, &BucketSpec::matchmakers(names).with_replicas(replicas))
                .await?,
            queue_tickets: ensure_bucket(
                js,
                &BucketSpec::queue_tickets(names).with_replicas(replicas),
            )
            .await?,
        })
    }
}

/// The stores as a resource.
#[derive(Resource, Clone)]
pub struct Stores(pub KvStores);

/// Connects the core to NATS KV.
pub struct KvBridgePlugin {
    /// The connection, made at start-up.
    pub nats: NatsConnection,
    /// The opened buckets.
    pub stores: KvStores,
}

impl Plugin for KvBridgePlugin {
    fn build(&self, app: &mut App) {
        add_inbox::<LeaseChanged>(app);
        add_inbox::<SeatChanged>(app);
        add_inbox::<LedgerSync>(app);
        add_inbox::<ReservationStored>(app);
        add_inbox::<DeploymentClosed>(app);
        app.insert_resource(Stores(self.stores.clone()))
            .insert_resource(NatsHandle(self.nats.clone()))
            .add_systems(Startup, start_watches)
            .add_systems(
                Update,
                (
                    store_reservations,
                    close_deployments,
                    free_seats,
                    purge_deployments,
                )
                    .in_set(CoreSystems::Effects),
            );
    }
}

/// The NATS connection as a resource (for readiness reports).
#[derive(Resource, Clone)]
pub struct NatsHandle(pub NatsConnection);

/// Spawns the lease and seat watch tasks.
pub fn start_watches(
    runtime: Res<AsyncRuntime>,
    nats: Res<NatsHandle>,
    stores: Res<Stores>,
    leases: Res<Inbox<LeaseChanged>>,
    seats: Res<Inbox<SeatChanged>>,
    sync: Res<Inbox<LedgerSync>>,
) {
    let _guard = runtime.0.enter();
    let lease_watch = spawn_reconciling_watch(
        &nats.0,
        stores.0.leases.clone(),
        ">",
        1024,
        Some(RECONCILE_EVERY),
    );
    let seat_watch = spawn_reconciling_watch(
        &nats.0,
        stores.0.seats.store().clone(),
        ">",
        4096,
        Some(RECONCILE_EVERY),
    );
    runtime
        .0
        .spawn(forward_leases(lease_watch, leases.sender(), sync.sender()));
    runtime
        .0
        .spawn(forward_seats(seat_watch, seats.sender(), sync.sender()));
}

/// Tracks which keys exist across re-lists, reporting the ones a re-list no longer shows.
#[derive(Default)]
pub(crate) struct Reconciler {
    known: HashSet<String>,
    listing: Option<HashSet<String>>,
}

impl Reconciler {
    /// Keys that exist, as of the last complete listing and the live events since.
    pub(crate) fn known(&self) -> usize {
        self.known.len()
    }

    /// The keys that exist, as of the last complete listing and the live events since.
    pub(crate) fn keys(&self) -> &HashSet<String> {
        &self.known
    }

    /// Whether a listing is under way (the count is not settled).
    pub(crate) fn listing(&self) -> bool {
        self.listing.is_some()
    }

    /// Feeds one watch event; returns the keys to report as removed, each with the revision of
    /// its removal (0 for a key a re-list no longer shows).
    pub(crate) fn removals(&mut self, event: &WatchEvent) -> Vec<(String, u64)> {
        let revision = match event {
            WatchEvent::Removed { revision, .. } => *revision,
            _ => 0,
        };
        self.apply(event)
            .into_iter()
            .map(|key| (key, revision))
            .collect()
    }

    /// Feeds one watch event; returns the keys to report as removed.
    pub(crate) fn apply(&mut self, event: &WatchEvent) -> Vec<String> {
        match event {
            WatchEvent::SyncStarted | WatchEvent::Reconciling => {
                self.listing = Some(HashSet::new());
                Vec::new()
            }
            WatchEvent::Synced => {
                let listed = self.listing.take().unwrap_or_default();
                let gone = self.known.difference(&listed).cloned().collect();
                self.known = listed;
                gone
            }
            WatchEvent::Put { key, .. } => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(key.clone());
                }
                self.known.insert(key.clone());
                Vec::new()
            }
            WatchEvent::Removed { key, .. } => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.remove(key);
                }
                self.known.remove(key);
                vec![key.clone()]
            }
        }
    }
}

/// Reports the start and end of listings that may follow a stale view (start-up, failures).
async fn report_sync(event: &WatchEvent, mirror: MirrorOf, sync: &InboxSender<LedgerSync>) {
    let synced = match event {
        WatchEvent::SyncStarted => false,
        WatchEvent::Synced => true,
        _ => return,
    };
    sync.send(LedgerSync { mirror, synced }).await;
}

async fn forward_leases(
    mut watch: bevygap_shared::nats::WatchHandle,
    changes: InboxSender<LeaseChanged>,
    sync: InboxSender<LedgerSync>,
) {
    let mut reconciler = Reconciler::default();
    while let Some(event) = watch.events.recv().await {
        for key in reconciler.apply(&event) {
            changes
                .send(LeaseChanged::Removed { deployment_id: key })
                .await;
        }
        if let WatchEvent::Put { key, value, .. } = &event {
            match decode::<DeploymentLease>(value) {
                Ok(lease) if lease.deployment_id == *key => {
                    changes.send(LeaseChanged::Updated(Box::new(lease))).await;
                }
                Ok(lease) => warn!(
                    "lease under key `{key}` names deployment `{}`; ignoring it",
                    lease.deployment_id
                ),
                Err(error) => warn!("ignoring lease `{key}`: {error}"),
            }
        }
        report_sync(&event, MirrorOf::Leases, &sync).await;
    }
}

async fn forward_seats(
    mut watch: bevygap_shared::nats::WatchHandle,
    changes: InboxSender<SeatChanged>,
    sync: InboxSender<LedgerSync>,
) {
    let mut reconciler = Reconciler::default();
    while let Some(event) = watch.events.recv().await {
        for (key, revision) in reconciler.removals(&event) {
            if let Some((deployment, seat)) = parse_seat_key(&key) {
                changes
                    .send(SeatChanged {
                        deployment_id: deployment.to_string(),
                        seat,
                        revision,
                        record: None,
                    })
                    .await;
            }
        }
        if let WatchEvent::Put {
            key,
            value,
            revision,
        } = &event
        {
            let Some((deployment, seat)) = parse_seat_key(key) else {
                warn!("ignoring seat key `{key}`: not `deployment.seat`");
                continue;
            };
            match decode::<SeatRecord>(value) {
                Ok(record)
                    if record.deployment_id == deployment.as_str() && record.seat == seat =>
                {
                    changes
                        .send(SeatChanged {
                            deployment_id: record.deployment_id.clone(),
                            seat,
                            revision: *revision,
                            record: Some(record),
                        })
                        .await;
                }
                Ok(_) => warn!("seat `{key}` holds a record for another seat; ignoring it"),
                // A seat with a record we cannot read is still taken: never sell it.
                Err(error) => {
                    warn!(
                        "seat `{key}` holds an unreadable record ({error}); counting it as taken"
                    );
                    changes
                        .send(SeatChanged {
                            deployment_id: deployment.to_string(),
                            seat,
                            revision: *revision,
                            record: Some(SeatRecord {
                                deployment_id: deployment.to_string(),
                                seat,
                                holder: SeatHolder::Closing { since_ms: 0 },
                            }),
                        })
                        .await;
                }
            }
        }
        report_sync(&event, MirrorOf::Seats, &sync).await;
    }
}

fn lost_or_unavailable(error: SeatWriteError) -> SeatStoreError {
    match error {
        SeatWriteError::Conflict { current, .. } => {
            SeatStoreError::Lost(current.map(|c| (c.revision, c.record)))
        }
        other => SeatStoreError::Unavailable(other.to_string()),
    }
}

/// Takes each placed seat in the ledger by compare-and-set and reports the outcome.
pub fn store_reservations(
    runtime: Res<AsyncRuntime>,
    stores: Res<Stores>,
    inbox: Res<Inbox<ReservationStored>>,
    mut requests: MessageReader<StoreReservation>,
) {
    for request in requests.read() {
        let ledger = stores.0.seats.clone();
        let sender = inbox.sender();
        let StoreReservation {
            reservation,
            record,
            expected_revision,
            ttl,
        } = request.clone();
        runtime.0.spawn(async move {
            let result = ledger
                .take(&record, expected_revision, Some(ttl))
                .await
                .map(|written| written.revision)
                .map_err(lost_or_unavailable);
            sender
                .send(ReservationStored {
                    reservation,
                    result,
                })
                .await;
        });
    }
}

/// Closes every seat of a deployment to be stopped; gives them back if one cannot be closed.
pub fn close_deployments(
    runtime: Res<AsyncRuntime>,
    stores: Res<Stores>,
    inbox: Res<Inbox<DeploymentClosed>>,
    mut requests: MessageReader<CloseDeployment>,
) {
    for request in requests.read() {
        let ledger = stores.0.seats.clone();
        let sender = inbox.sender();
        let CloseDeployment {
            deployment,
            deployment_id,
            seats,
        } = request.clone();
        runtime.0.spawn(async move {
            let closed = close_all(&ledger, &deployment_id, seats).await;
            sender.send(DeploymentClosed { deployment, closed }).await;
        });
    }
}

/// Seat writes in flight at once while closing a deployment.
const CLOSE_CONCURRENCY: usize = 64;

async fn close_all(ledger: &SeatLedger, deployment_id: &str, seats: Vec<(u32, u64)>) -> bool {
    let since_ms = now_millis();
    let results: Vec<(u32, Result<u64, SeatWriteError>)> = futures::stream::iter(seats)
        .map(|(seat, expected)| {
            let record = SeatRecord {
                deployment_id: deployment_id.to_owned(),
                seat,
                holder: SeatHolder::Closing { since_ms },
            };
            async move {
                let result = ledger
                    .take(&record, expected, Some(CLOSING_TTL))
                    .await
                    .map(|w| w.revision);
                (seat, result)
            }
        })
        .buffer_unordered(CLOSE_CONCURRENCY)
        .collect()
        .await;
    if results.iter().all(|(_, r)| r.is_ok()) {
        return true;
    }
    // A seat was sold (or KV failed) meanwhile: give back the seats this stop closed.
    let Ok(deployment) = KeyToken::new("deployment id", deployment_id) else {
        return false;
    };
    for (seat, result) in results {
        if let Ok(revision) = result
            && let Err(error) = ledger
                .free(
                    &seat_key(&deployment, seat),
                    revision,
                    BucketSpec::MARKER_TTL,
                )
                .await
        {
            debug!("closed seat {seat} of `{deployment_id}` not reopened ({error}); it lapses");
        }
    }
    false
}

/// Frees seats taken for tickets that went away before their answer.
pub fn free_seats(
    runtime: Res<AsyncRuntime>,
    stores: Res<Stores>,
    mut requests: MessageReader<FreeSeat>,
) {
    for FreeSeat {
        deployment_id,
        seat,
        revision,
    } in requests.read()
    {
        let Ok(deployment) = KeyToken::new("deployment id", deployment_id.as_str()) else {
            continue;
        };
        let key = seat_key(&deployment, *seat);
        let ledger = stores.0.seats.clone();
        let revision = *revision;
        runtime.0.spawn(async move {
            if let Err(error) = ledger.free(&key, revision, BucketSpec::MARKER_TTL).await {
                debug!("seat `{key}` not freed ({error}); it lapses with its reservation");
            }
        });
    }
}

/// Removes a gone deployment's seats and connection records, history included.
pub fn purge_deployments(
    runtime: Res<AsyncRuntime>,
    stores: Res<Stores>,
    mut requests: MessageReader<PurgeDeployment>,
) {
    for PurgeDeployment { deployment_id } in requests.read() {
        let Ok(deployment) = KeyToken::new("deployment id", deployment_id.as_str()) else {
            continue;
        };
        let stores = stores.0.clone();
        runtime.0.spawn(async move {
            if let Err(error) = stores.seats.purge_deployment(&deployment).await {
                warn!("seats of gone deployment `{deployment}` not purged: {error}");
            }
            if let Err(error) =
                purge_keys(&stores.connections, &deployment_filter(&deployment)).await
            {
                warn!("connections of gone deployment `{deployment}` not purged: {error}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> WatchEvent {
        WatchEvent::Put {
            key: key.into(),
            value: Default::default(),
            revision: 1,
        }
    }

    #[test]
    fn a_relist_reports_keys_that_vanished_meanwhile() {
        let mut r = Reconciler::default();
        assert!(r.apply(&WatchEvent::SyncStarted).is_empty());
        r.apply(&put("a"));
        r.apply(&put("b"));
        assert!(r.apply(&WatchEvent::Synced).is_empty());
        r.apply(&put("c"));
        // NATS restarts; only `b` and `c` are listed again.
        r.apply(&WatchEvent::SyncStarted);
        r.apply(&put("b"));
        r.apply(&put("c"));
        assert_eq!(r.apply(&WatchEvent::Synced), vec!["a".to_string()]);
    }
}
