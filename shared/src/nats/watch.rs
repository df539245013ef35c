//! A KV watch that delivers the current state first, then live changes, and re-lists after any
//! failure so a consumer can reconcile instead of silently missing events.

use std::time::Duration;

use async_nats::jetstream::consumer::push::OrderedConfig;
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::connect::{NatsConnection, reconnect_delay};

/// What a watch reports, in order: `SyncStarted`, the current entries, `Synced`, then live changes.
/// After a failure (NATS restart, consumer lost) the sequence starts again with `SyncStarted`:
/// keys not re-listed before the next `Synced` are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A full listing begins after a start or a failure: until `Synced`, the consumer's view may
    /// be stale.
    SyncStarted,
    /// A periodic full listing begins while the live phase was healthy (a safety net in case the
    /// client library recreated its consumer silently and missed events): handle like
    /// `SyncStarted`, but the view was not known to be stale.
    Reconciling,
    /// The listing is complete; what follows is live.
    Synced,
    /// A key was written.
    Put {
        /// The key.
        key: String,
        /// The value bytes.
        value: Bytes,
        /// The stream sequence of this write.
        revision: u64,
    },
    /// A key was deleted, purged, or expired (max age).
    Removed {
        /// The key.
        key: String,
        /// The stream sequence of the delete marker.
        revision: u64,
    },
}

/// A running watch: events arrive on `events`; dropping the handle stops the task.
#[derive(Debug)]
pub struct WatchHandle {
    /// The events, through a bounded channel (the watch waits when the consumer falls behind).
    pub events: mpsc::Receiver<WatchEvent>,
    task: JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches keys matching `filter` (`>` for all) in `store`, feeding a channel of `capacity` events.
///
/// Must be called inside a tokio runtime.
pub fn spawn_watch(
    nats: &NatsConnection,
    store: kv::Store,
    filter: impl Into<String>,
    capacity: usize,
) -> WatchHandle {
    spawn_reconciling_watch(nats, store, filter, capacity, None)
}

/// Like [`spawn_watch`], and lists everything again every `reconcile_every` while healthy
/// (announced with [`WatchEvent::Reconciling`]), so a consumer that reconciles on each listing
/// converges even if live events were lost without an error.
pub fn spawn_reconciling_watch(
    nats: &NatsConnection,
    store: kv::Store,
    filter: impl Into<String>,
    capacity: usize,
    reconcile_every: Option<Duration>,
) -> WatchHandle {
    let (tx, events) = mpsc::channel(capacity.max(1));
    let filter = filter.into();
    let task = tokio::spawn(run_watch(
        nats.client().clone(),
        store,
        filter,
        tx,
        reconcile_every,
    ));
    WatchHandle { events, task }
}

/// How one listing-plus-live phase ended without a NATS failure.
enum PhaseEnd {
    /// The receiver was dropped: stop watching.
    ReceiverGone,
    /// Time for a periodic re-list.
    Reconcile,
}

async fn run_watch(
    client: async_nats::Client,
    store: kv::Store,
    filter: String,
    tx: mpsc::Sender<WatchEvent>,
    reconcile_every: Option<Duration>,
) {
    let mut failures = 0usize;
    let mut periodic = false;
    loop {
        let phase = watch_once(
            &client,
            &store,
            &filter,
            &tx,
            &mut failures,
            periodic,
            reconcile_every,
        )
        .await;
        match phase {
            Ok(PhaseEnd::ReceiverGone) => return,
            Ok(PhaseEnd::Reconcile) => {
                debug!("KV watch `{}` `{filter}`: periodic re-list", store.name);
                periodic = true;
            }
            Err(reason) => {
                periodic = false;
                let delay = reconnect_delay(failures);
                warn!(
                    "KV watch `{}` `{filter}` interrupted ({reason}); re-listing in {delay:?}",
                    store.name
                );
                failures = failures.saturating_add(1);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs one listing plus live phase; `Err` is a NATS failure.
async fn watch_once(
    client: &async_nats::Client,
    store: &kv::Store,
    filter: &str,
    tx: &mpsc::Sender<WatchEvent>,
    failures: &mut usize,
    periodic: bool,
    reconcile_every: Option<Duration>,
) -> Result<PhaseEnd, String> {
    let deliver_subject = client.new_inbox();
    // A named consumer carries its filter in the API subject
    // (`$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}`), which NATS permissions can scope.
    let name = format!(
        "w{}",
        deliver_subject.rsplit('.').next().unwrap_or_default()
    );
    let consumer = store
        .stream
        .create_consumer(OrderedConfig {
            name: Some(name),
            deliver_subject,
            description: Some("bevygap kv watch".into()),
            filter_subject: format!("{}{filter}", store.prefix),
            replay_policy: ReplayPolicy::Instant,
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut synced = consumer.cached_info().num_pending == 0;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let start = if periodic {
        WatchEvent::Reconciling
    } else {
        WatchEvent::SyncStarted
    };
    if tx.send(start).await.is_err() {
        return Ok(PhaseEnd::ReceiverGone);
    }
    if synced && tx.send(WatchEvent::Synced).await.is_err() {
        return Ok(PhaseEnd::ReceiverGone);
    }
    *failures = 0;
    debug!("KV watch `{}` `{filter}` started", store.name);
    let reconcile_at = reconcile_every.map(|every| tokio::time::Instant::now() + every);

    loop {
        let next = match reconcile_at {
            Some(at) => tokio::select! {
                next = messages.next() => next,
                () = tokio::time::sleep_until(at), if synced => return Ok(PhaseEnd::Reconcile),
            },
            None => messages.next().await,
        };
        let Some(message) = next else { break };
        let message = message.map_err(|e| e.to_string())?;
        let info = message.info().map_err(|e| e.to_string())?;
        let (revision, pending) = (info.stream_sequence, info.pending);
        let Some(key) = message.subject.strip_prefix(store.prefix.as_str()) else {
            continue;
        };
        let event = if is_removal(&message.message) {
            WatchEvent::Removed {
                key: key.to_owned(),
                revision,
            }
        } else {
            WatchEvent::Put {
                key: key.to_owned(),
                value: message.payload.clone(),
                revision,
            }
        };
        if tx.send(event).await.is_err() {
            return Ok(PhaseEnd::ReceiverGone);
        }
        if !synced && pending == 0 {
            synced = true;
            if tx.send(WatchEvent::Synced).await.is_err() {
                return Ok(PhaseEnd::ReceiverGone);
            }
        }
    }
    Err("watch stream ended".into())
}

/// Whether a KV message is a delete, purge or max-age marker rather than a value.
fn is_removal(message: &async_nats::Message) -> bool {
    let Some(headers) = message.headers.as_ref() else {
        return false;
    };
    if let Some(op) = headers.get("KV-Operation") {
        return matches!(op.as_str(), "DEL" | "PURGE");
    }
    headers.get("Nats-Marker-Reason").is_some()
}
