//! KV buckets on a real nats-server: idempotent creation and a watch that lists, follows live
//! changes, and survives a server restart.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::time::Duration;

use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{
    BucketSpec, NatsSettings, SeatLedger, SeatWriteError, WatchEvent, connect, ensure_bucket,
    spawn_reconciling_watch, spawn_watch,
};
use bevygap_shared::schema::{SeatHolder, SeatRecord};
use bevygap_test_support::NatsServer;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

async fn next_event(handle: &mut bevygap_shared::nats::WatchHandle) -> WatchEvent {
    timeout(WAIT, handle.events.recv())
        .await
        .expect("no watch event before the deadline")
        .expect("watch channel closed")
}

/// Reads events until one matches, failing at the deadline.
async fn wait_for_event(
    handle: &mut bevygap_shared::nats::WatchHandle,
    want: impl Fn(&WatchEvent) -> bool,
) -> WatchEvent {
    loop {
        let event = next_event(handle).await;
        if want(&event) {
            return event;
        }
    }
}

/// A fresh nats-server, a connection to it, and the bucket of `spec`.
async fn with_bucket(
    spec: &BucketSpec,
) -> (
    NatsServer,
    bevygap_shared::nats::NatsConnection,
    async_nats::jetstream::kv::Store,
) {
    let server = NatsServer::start().expect("start nats-server");
    let nats = connect(&NatsSettings::insecure(server.address()), "test")
        .await
        .unwrap();
    let store = ensure_bucket(nats.jetstream(), spec).await.unwrap();
    (server, nats, store)
}

fn names() -> AppNames {
    AppNames::new("test-game").expect("valid app name")
}

#[tokio::test]
async fn bucket_creation_is_idempotent() {
    let server = NatsServer::start().expect("start nats-server");
    let nats = connect(&NatsSettings::insecure(server.address()), "test")
        .await
        .unwrap();
    let spec = BucketSpec::leases(&names());
    let first = ensure_bucket(nats.jetstream(), &spec)
        .await
        .expect("create");
    first.put("dep-1", "v1".into()).await.unwrap();
    let second = ensure_bucket(nats.jetstream(), &spec)
        .await
        .expect("create again");
    assert_eq!(
        second.get("dep-1").await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    for spec in [
        BucketSpec::seats(&names()),
        BucketSpec::connections(&names()),
    ] {
        ensure_bucket(nats.jetstream(), &spec)
            .await
            .expect("create");
        ensure_bucket(nats.jetstream(), &spec)
            .await
            .expect("create again");
    }
}

#[tokio::test]
async fn a_watch_lists_existing_keys_then_sees_puts_and_deletes() {
    let (_server, nats, store) = with_bucket(&BucketSpec::connections(&names())).await;
    store.put("dep-1.1", "before".into()).await.unwrap();

    let mut watch = spawn_watch(&nats, store.clone(), ">", 64);
    assert_eq!(next_event(&mut watch).await, WatchEvent::SyncStarted);
    assert!(
        matches!(next_event(&mut watch).await, WatchEvent::Put { key, .. } if key == "dep-1.1")
    );
    assert_eq!(next_event(&mut watch).await, WatchEvent::Synced);

    store.put("dep-1.2", "after".into()).await.unwrap();
    let event = next_event(&mut watch).await;
    assert!(
        matches!(&event, WatchEvent::Put { key, value, .. } if key == "dep-1.2" && &value[..] == b"after"),
        "{event:?}"
    );
    store.delete("dep-1.1").await.unwrap();
    assert!(
        matches!(next_event(&mut watch).await, WatchEvent::Removed { key, .. } if key == "dep-1.1")
    );
}

#[tokio::test]
async fn a_watch_on_an_empty_bucket_reports_synced_at_once() {
    let (_server, nats, store) = with_bucket(&BucketSpec::connections(&names())).await;
    let mut watch = spawn_watch(&nats, store, "dep-9.>", 8);
    assert_eq!(next_event(&mut watch).await, WatchEvent::SyncStarted);
    assert_eq!(next_event(&mut watch).await, WatchEvent::Synced);
}

#[tokio::test]
async fn a_reconciling_watch_lists_everything_again_while_healthy() {
    let (_server, nats, store) = with_bucket(&BucketSpec::connections(&names())).await;
    store.put("dep-1.1", "v".into()).await.unwrap();
    let mut watch = spawn_reconciling_watch(
        &nats,
        store.clone(),
        ">",
        64,
        Some(Duration::from_millis(200)),
    );
    wait_for_event(&mut watch, |e| *e == WatchEvent::Synced).await;
    // A purge of the whole history sends no event; the next listing shows the key is gone.
    store
        .stream
        .purge()
        .filter(format!("{}dep-1.>", store.prefix))
        .await
        .unwrap();
    wait_for_event(&mut watch, |e| *e == WatchEvent::Reconciling).await;
    assert_eq!(next_event(&mut watch).await, WatchEvent::Synced);
}

#[tokio::test]
async fn the_seat_ledger_sells_a_seat_once_and_tells_the_loser_what_is_there() {
    let (_server, nats, store) = with_bucket(&BucketSpec::seats(&names())).await;
    let ledger = SeatLedger::new(store, nats.jetstream().clone());
    let seat = |client_id| SeatRecord {
        deployment_id: "dep-1".into(),
        seat: 0,
        holder: SeatHolder::Reserved {
            reservation_id: format!("r-{client_id}"),
            client_id,
            issued_at_ms: 0,
            expires_at_ms: 1,
        },
    };
    let won = ledger
        .take(&seat(1), 0, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    match ledger
        .take(&seat(2), 0, Some(Duration::from_secs(30)))
        .await
    {
        Err(SeatWriteError::Conflict { current, .. }) => {
            let current = current.unwrap();
            assert_eq!(current.revision, won.revision);
            assert_eq!(current.record.and_then(|r| r.client_id()), Some(1));
        }
        other => panic!("the second sale must lose, got {other:?}"),
    }
    ledger
        .free("dep-1.0", won.revision, Duration::from_secs(5))
        .await
        .unwrap();
    let freed = ledger.current("dep-1.0").await.unwrap();
    assert!(freed.record.is_none());
    // Sold again over the delete marker's revision.
    ledger
        .take(&seat(3), freed.revision, Some(Duration::from_secs(30)))
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_entries_are_reported_as_removed() {
    let spec = BucketSpec::leases_with_ttl(&names(), Duration::from_secs(1));
    let (_server, nats, store) = with_bucket(&spec).await;
    let mut watch = spawn_watch(&nats, store.clone(), ">", 8);
    wait_for_event(&mut watch, |e| *e == WatchEvent::Synced).await;
    store.put("dep-1", "lease".into()).await.unwrap();
    wait_for_event(
        &mut watch,
        |e| matches!(e, WatchEvent::Put { key, .. } if key == "dep-1"),
    )
    .await;
    wait_for_event(
        &mut watch,
        |e| matches!(e, WatchEvent::Removed { key, .. } if key == "dep-1"),
    )
    .await;
}

#[tokio::test]
async fn a_watch_survives_a_server_restart() {
    let (mut server, nats, store) = with_bucket(&BucketSpec::connections(&names())).await;
    let mut watch = spawn_watch(&nats, store.clone(), ">", 64);
    wait_for_event(&mut watch, |e| *e == WatchEvent::Synced).await;
    store.put("dep-1.1", "before".into()).await.unwrap();
    wait_for_event(
        &mut watch,
        |e| matches!(e, WatchEvent::Put { key, .. } if key == "dep-1.1"),
    )
    .await;

    server.restart().expect("restart nats-server");
    let mut state = nats.watch_state();
    timeout(
        WAIT,
        state.wait_for(|s| {
            s.is_connected()
                && *s != bevygap_shared::nats::ConnectionState::Connected { reconnects: 0 }
        }),
    )
    .await
    .expect("client did not reconnect")
    .unwrap();

    // Writes may fail until JetStream has recovered its streams; retry with a deadline.
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.put("dep-1.2", "after".into()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "put after restart kept failing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_event(
        &mut watch,
        |e| matches!(e, WatchEvent::Put { key, .. } if key == "dep-1.2"),
    )
    .await;
}
