//! The KV bridge: NATS KV watches become core messages; reservations are written to KV.
//!
//! Leases (`{app}_leases`) and active connections (`{app}_connections`) are watched with their
//! current state first, then live. After a NATS failure the watch re-lists; keys that vanished
//! meanwhile are reported as removed, so the core reconciles instead of keeping stale state.

use std::collections::HashSet;

use async_nats::jetstream::kv;
use bevy::prelude::*;
use bevygap_shared::names::{AppNames, KeyToken, client_key, parse_client_key};
use bevygap_shared::nats::{BucketSpec, NatsConnection, WatchEvent, ensure_bucket, spawn_watch};
use bevygap_shared::schema::{DeploymentLease, decode, encode};

use crate::bridge::{Inbox, InboxSender, add_inbox};
use crate::core_plugin::CoreSystems;
use crate::messages::{
    ConnectionClosed, ConnectionOpened, LeaseRemoved, LeaseUpdated, ReservationStored,
    StoreReservation,
};
use crate::runtime::AsyncRuntime;

/// The buckets the matchmaker uses, opened at start-up.
#[derive(Clone)]
pub struct KvStores {
    /// Game server leases.
    pub leases: kv::Store,
    /// Reservations written by the matchmaker.
    pub reservations: kv::Store,
    /// Active connections written by game servers.
    pub connections: kv::Store,
}

impl KvStores {
    /// Creates (or opens) the three buckets of an app.
    pub async fn open(
        nats: &NatsConnection,
        names: &AppNames,
        reservation_ttl: std::time::Duration,
    ) -> Result<Self, bevygap_shared::NatsError> {
        let js = nats.jetstream();
        Ok(Self {
            leases: ensure_bucket(js, &BucketSpec::leases(names)).await?,
            reservations: ensure_bucket(js, &BucketSpec::reservations(names, reservation_ttl))
                .await?,
            connections: ensure_bucket(js, &BucketSpec::connections(names)).await?,
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
        add_inbox::<LeaseUpdated>(app);
        add_inbox::<LeaseRemoved>(app);
        add_inbox::<ConnectionOpened>(app);
        add_inbox::<ConnectionClosed>(app);
        add_inbox::<ReservationStored>(app);
        app.insert_resource(Stores(self.stores.clone()))
            .insert_resource(NatsHandle(self.nats.clone()))
            .add_systems(Startup, start_watches)
            .add_systems(Update, store_reservations.in_set(CoreSystems::Effects));
    }
}

/// The NATS connection as a resource (for readiness reports).
#[derive(Resource, Clone)]
pub struct NatsHandle(pub NatsConnection);

/// Spawns the lease and connection watch tasks.
pub fn start_watches(
    runtime: Res<AsyncRuntime>,
    nats: Res<NatsHandle>,
    stores: Res<Stores>,
    lease_updated: Res<Inbox<LeaseUpdated>>,
    lease_removed: Res<Inbox<LeaseRemoved>>,
    opened: Res<Inbox<ConnectionOpened>>,
    closed: Res<Inbox<ConnectionClosed>>,
) {
    let _guard = runtime.0.enter();
    let leases = spawn_watch(&nats.0, stores.0.leases.clone(), ">", 1024);
    let connections = spawn_watch(&nats.0, stores.0.connections.clone(), ">", 1024);
    runtime.0.spawn(forward_leases(
        leases,
        lease_updated.sender(),
        lease_removed.sender(),
    ));
    runtime.0.spawn(forward_connections(
        connections,
        opened.sender(),
        closed.sender(),
    ));
}

/// Tracks which keys exist across re-lists, reporting the ones a re-list no longer shows.
#[derive(Default)]
struct Reconciler {
    known: HashSet<String>,
    listing: Option<HashSet<String>>,
}

impl Reconciler {
    /// Feeds one watch event; returns the keys to report as removed.
    fn apply(&mut self, event: &WatchEvent) -> Vec<String> {
        match event {
            WatchEvent::SyncStarted => {
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

async fn forward_leases(
    mut watch: bevygap_shared::nats::WatchHandle,
    updated: InboxSender<LeaseUpdated>,
    removed: InboxSender<LeaseRemoved>,
) {
    let mut reconciler = Reconciler::default();
    while let Some(event) = watch.events.recv().await {
        for key in reconciler.apply(&event) {
            removed.send(LeaseRemoved { deployment_id: key }).await;
        }
        if let WatchEvent::Put { key, value, .. } = event {
            match decode::<DeploymentLease>(&value) {
                Ok(lease) if lease.deployment_id == key => {
                    updated.send(LeaseUpdated(lease)).await;
                }
                Ok(lease) => warn!(
                    "lease under key `{key}` names deployment `{}`; ignoring it",
                    lease.deployment_id
                ),
                Err(error) => warn!("ignoring lease `{key}`: {error}"),
            }
        }
    }
}

async fn forward_connections(
    mut watch: bevygap_shared::nats::WatchHandle,
    opened: InboxSender<ConnectionOpened>,
    closed: InboxSender<ConnectionClosed>,
) {
    let mut reconciler = Reconciler::default();
    while let Some(event) = watch.events.recv().await {
        for key in reconciler.apply(&event) {
            if let Some((deployment, client_id)) = parse_client_key(&key) {
                closed
                    .send(ConnectionClosed {
                        deployment_id: deployment.to_string(),
                        client_id,
                    })
                    .await;
            }
        }
        if let WatchEvent::Put { key, .. } = event {
            match parse_client_key(&key) {
                Some((deployment, client_id)) => {
                    opened
                        .send(ConnectionOpened {
                            deployment_id: deployment.to_string(),
                            client_id,
                        })
                        .await;
                }
                None => warn!("ignoring connection key `{key}`: not `deployment.client_id`"),
            }
        }
    }
}

/// Writes each reservation to KV and reports the outcome.
pub fn store_reservations(
    runtime: Res<AsyncRuntime>,
    stores: Res<Stores>,
    inbox: Res<Inbox<ReservationStored>>,
    mut requests: MessageReader<StoreReservation>,
) {
    for StoreReservation {
        reservation,
        record,
    } in requests.read()
    {
        let store = stores.0.reservations.clone();
        let sender = inbox.sender();
        let reservation = *reservation;
        let key = KeyToken::new("deployment id", record.deployment_id.as_str())
            .map(|d| client_key(&d, record.client_id));
        let value = encode(record);
        runtime.0.spawn(async move {
            let result = match key {
                Ok(key) => store
                    .put(key, value.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            sender
                .send(ReservationStored {
                    reservation,
                    result,
                })
                .await;
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
