//! Live matchmakers: each process keeps a key in `{app}_matchmakers` by heartbeat and watches
//! the others', so every process knows how many serve the app. The fleet backend is told, and
//! takes only its part of the provider's rate budget (Edgegap's limits are per account: three
//! matchmakers each sending at the full rate would be refused).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bevy::prelude::*;
use bevygap_shared::nats::{NatsConnection, spawn_watch};
use bevygap_shared::time::now_millis;

use crate::bridge::{Inbox, InboxSender, add_inbox};
use crate::core_plugin::CoreSystems;
use crate::fleet::FleetBackend;
use crate::kv_bridge::Reconciler;
use crate::runtime::AsyncRuntime;

/// How often this process renews its presence key (its TTL is
/// [`BucketSpec::PRESENCE_TTL`](bevygap_shared::nats::BucketSpec::PRESENCE_TTL)).
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// How many matchmakers serve the app now, this one included, and their presence ids.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct MatchmakersLive {
    /// How many (at least one: this process).
    pub count: usize,
    /// Their presence ids, as listed in `{app}_matchmakers`.
    pub instances: Vec<String>,
}

/// The presence ids of the matchmakers running now (pooled queue tickets of others are matched
/// only while their owner is alive to answer its client).
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveInstances(pub std::collections::HashSet<String>);

/// The last count, for inspection.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Resource)]
pub struct LiveMatchmakers(pub usize);

/// This process's presence.
pub struct PresencePlugin {
    /// This process's presence id (`mm-` and 16 hex digits).
    pub instance: String,
    /// The NATS connection.
    pub nats: NatsConnection,
    /// The `{app}_matchmakers` bucket.
    pub store: kv::Store,
    /// The fleet backend to tell how many share its budget.
    pub fleet: Arc<dyn FleetBackend>,
}

impl Plugin for PresencePlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<MatchmakersLive>();
        add_inbox::<MatchmakersLive>(app);
        let instance = self.instance.clone();
        info!("matchmaker instance `{instance}`");
        let runtime = app.world().resource::<AsyncRuntime>().0.clone();
        let sender = app.world().resource::<Inbox<MatchmakersLive>>().sender();
        {
            let _guard = runtime.enter();
            let watch = spawn_watch(&self.nats, self.store.clone(), ">", 64);
            runtime.spawn(keep_presence(self.store.clone(), instance));
            runtime.spawn(count_matchmakers(watch, self.fleet.clone(), sender));
        }
        app.insert_resource(LiveMatchmakers(1))
            .init_resource::<LiveInstances>()
            .register_type::<LiveMatchmakers>()
            .add_systems(Update, apply_presence.in_set(CoreSystems::Apply));
    }
}

/// Renews this process's key until the runtime stops.
async fn keep_presence(store: kv::Store, instance: String) {
    let mut failing = false;
    loop {
        match store
            .put(instance.as_str(), now_millis().to_string().into())
            .await
        {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                warn!("presence `{instance}` could not be renewed ({error}); retrying");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Counts live keys (current state first, then changes) and reports every change.
async fn count_matchmakers(
    mut watch: bevygap_shared::nats::WatchHandle,
    fleet: Arc<dyn FleetBackend>,
    live: InboxSender<MatchmakersLive>,
) {
    let mut reconciler = Reconciler::default();
    let mut reported = 0;
    let mut reported_instances = std::collections::HashSet::new();
    while let Some(event) = watch.events.recv().await {
        reconciler.apply(&event);
        if reconciler.listing() {
            continue;
        }
        let count = reconciler.known().max(1);
        if count != reported {
            reported = count;
            info!(
                "{count} matchmakers serve this app; each takes 1/{count} of the fleet's rate budget"
            );
            fleet.share_budget_among(count);
        }
        if *reconciler.keys() != reported_instances {
            reported_instances = reconciler.keys().clone();
            live.send(MatchmakersLive {
                count,
                instances: reported_instances.iter().cloned().collect(),
            })
            .await;
        }
    }
}

/// Keeps [`LiveMatchmakers`] current.
pub fn apply_presence(
    mut live: MessageReader<MatchmakersLive>,
    mut count: ResMut<LiveMatchmakers>,
    mut instances: ResMut<LiveInstances>,
) {
    if let Some(MatchmakersLive {
        count: n,
        instances: ids,
    }) = live.read().last()
    {
        count.0 = *n;
        instances.0 = ids.iter().cloned().collect();
    }
}
