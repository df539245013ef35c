//! The game server's NATS side on a real nats-server: lease heartbeat and removal, reservations
//! feeding admission, connection keys written and removed.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevygap_server_plugin::admission::Admission;
use bevygap_server_plugin::context::DeploymentContext;
use bevygap_server_plugin::kv_tasks::{
    ConnectionRecorder, lease_for, lock, run_lease, watch_reservations,
};
use bevygap_shared::names::{AppNames, KeyToken, client_key};
use bevygap_shared::nats::{BucketSpec, NatsSettings, connect, ensure_bucket};
use bevygap_shared::schema::{DeploymentLease, Reservation, Transport, decode, encode};
use bevygap_shared::time::now_millis;
use bevygap_test_support::{NatsServer, wait_until_async};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(15);

fn context() -> DeploymentContext {
    DeploymentContext {
        deployment_id: KeyToken::new("d", "dep-a").unwrap(),
        app_name: "spaceships".into(),
        app_version: "1".into(),
        public_addr: "127.0.0.1:6420".parse().unwrap(),
        bind_addr: "127.0.0.1:6420".parse().unwrap(),
        capacity: 4,
        fqdn: None,
        location: None,
    }
}

fn reservation(deployment: &str, client_id: u64) -> Reservation {
    Reservation {
        reservation_id: format!("r-{client_id}"),
        deployment_id: deployment.into(),
        client_id,
        issued_at_ms: now_millis(),
        expires_at_ms: now_millis() + 10_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_written_refreshed_with_the_player_count_and_removed_on_stop() {
    let server = NatsServer::start().unwrap();
    let nats = connect(&NatsSettings::insecure(server.address()), "test")
        .await
        .unwrap();
    let names = AppNames::new("spaceships").unwrap();
    let leases = ensure_bucket(nats.jetstream(), &BucketSpec::leases(&names))
        .await
        .unwrap();
    let players = Arc::new(AtomicU32::new(0));
    let (ready_tx, mut ready) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(run_lease(
        leases.clone(),
        lease_for(&context(), Transport::Udp, None),
        players.clone(),
        Duration::from_millis(50),
        ready_tx,
        stop,
    ));
    tokio::time::timeout(WAIT, ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    let lease: DeploymentLease = decode(&leases.get("dep-a").await.unwrap().unwrap()).unwrap();
    assert_eq!((lease.capacity, lease.players), (4, 0));

    players.store(3, Ordering::Relaxed);
    wait_until_async("the heartbeat to carry 3 players", WAIT, || async {
        let bytes = leases.get("dep-a").await.ok()??;
        (decode::<DeploymentLease>(&bytes).ok()?.players == 3).then_some(())
    })
    .await;

    stop_tx.send_replace(true);
    task.await.unwrap();
    assert!(
        leases.get("dep-a").await.unwrap().is_none(),
        "lease removed on clean shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_for_this_server_feed_admission_and_connections_are_recorded() {
    let server = NatsServer::start().unwrap();
    let nats = connect(&NatsSettings::insecure(server.address()), "test")
        .await
        .unwrap();
    let names = AppNames::new("spaceships").unwrap();
    let reservations = ensure_bucket(
        nats.jetstream(),
        &BucketSpec::reservations(&names, Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let connections = ensure_bucket(nats.jetstream(), &BucketSpec::connections(&names))
        .await
        .unwrap();
    let admission = Arc::new(Mutex::new(Admission::new("dep-a")));
    let watcher = tokio::spawn(watch_reservations(
        nats.clone(),
        reservations.clone(),
        context(),
        admission.clone(),
    ));

    let dep = KeyToken::new("d", "dep-a").unwrap();
    let other = KeyToken::new("d", "dep-b").unwrap();
    reservations
        .put(client_key(&dep, 7), encode(&reservation("dep-a", 7)).into())
        .await
        .unwrap();
    reservations
        .put(
            client_key(&other, 8),
            encode(&reservation("dep-b", 8)).into(),
        )
        .await
        .unwrap();
    wait_until_async("the reservation to reach admission", WAIT, || async {
        (lock(&admission).pending() == 1).then_some(())
    })
    .await;
    let admitted = lock(&admission).admit(7, None, now_millis()).unwrap();
    assert!(
        lock(&admission).admit(8, None, now_millis()).is_err(),
        "another server's reservation"
    );

    let recorder = ConnectionRecorder {
        connections: connections.clone(),
        reservations: reservations.clone(),
        context: context(),
    };
    recorder.opened(7, admitted.reservation_id).await;
    assert!(
        connections
            .get(client_key(&dep, 7))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        reservations
            .get(client_key(&dep, 7))
            .await
            .unwrap()
            .is_none(),
        "consumed reservation deleted"
    );
    recorder.closed(7).await;
    assert!(
        connections
            .get(client_key(&dep, 7))
            .await
            .unwrap()
            .is_none()
    );
    watcher.abort();
}
