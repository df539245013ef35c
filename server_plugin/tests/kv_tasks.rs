//! The game server's NATS side on a real nats-server: lease heartbeat and removal, reserved seats
//! feeding admission, seats taken and freed by compare-and-set, connection keys written and
//! removed, phantom players of an earlier run cleared.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use bevygap_server_plugin::admission::Admission;
use bevygap_server_plugin::context::DeploymentContext;
use bevygap_server_plugin::kv_tasks::{
    ConnectionRecorder, SeatCommand, lease_for, lock, look_up_seats, run_lease, run_recorder,
    watch_seats,
};
use bevygap_shared::names::{AppNames, KeyToken, client_key, seat_key};
use bevygap_shared::nats::{
    BucketSpec, ConnectionState, NatsConnection, NatsSettings, SeatLedger, connect, ensure_bucket,
};
use bevygap_shared::schema::{DeploymentLease, SeatHolder, SeatRecord, Transport, decode};
use bevygap_shared::time::now_millis;
use bevygap_test_support::{NatsServer, wait_until_async};
use tokio::sync::{Notify, watch};

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
        parent_pid: None,
    }
}

fn reserved(deployment: &str, seat: u32, client_id: u64) -> SeatRecord {
    SeatRecord {
        deployment_id: deployment.into(),
        seat,
        holder: SeatHolder::Reserved {
            reservation_id: format!("r-{client_id}"),
            client_id,
            issued_at_ms: now_millis(),
            expires_at_ms: now_millis() + 10_000,
        },
    }
}

/// A nats-server with the seat ledger and connections buckets of `spaceships`.
async fn ledger_buckets() -> (NatsServer, NatsConnection, SeatLedger, kv::Store) {
    let server = NatsServer::start().unwrap();
    let nats = connect(&NatsSettings::insecure(server.address()), "test")
        .await
        .unwrap();
    let names = AppNames::new("spaceships").unwrap();
    let seats = ensure_bucket(nats.jetstream(), &BucketSpec::seats(&names))
        .await
        .unwrap();
    let ledger = SeatLedger::new(seats, nats.jetstream().clone());
    let connections = ensure_bucket(nats.jetstream(), &BucketSpec::connections(&names))
        .await
        .unwrap();
    (server, nats, ledger, connections)
}

/// The client left `seat` of dep-a: the seat is free and its connection key gone.
async fn assert_client_left(ledger: &SeatLedger, connections: &kv::Store, seat: u32, client: u64) {
    let dep = KeyToken::new("d", "dep-a").unwrap();
    let state = ledger.current(&seat_key(&dep, seat)).await.unwrap();
    assert!(state.record.is_none(), "seat {seat} is free: {state:?}");
    let key = connections.get(client_key(&dep, client)).await.unwrap();
    assert!(key.is_none(), "client {client}'s connection key is gone");
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
    let (players_tx, players) = watch::channel(0u32);
    let (backfill_tx, backfill) = watch::channel(None);
    let (ready_tx, mut ready) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(run_lease(
        leases.clone(),
        lease_for(&context(), Transport::Udp, None),
        players,
        backfill,
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

    players_tx.send_replace(3);
    wait_until_async("the heartbeat to carry 3 players", WAIT, || async {
        let bytes = leases.get("dep-a").await.ok()??;
        (decode::<DeploymentLease>(&bytes).ok()?.players == 3).then_some(())
    })
    .await;

    // A backfill rides on the lease.
    let wanted = bevygap_shared::schema::LeaseBackfill {
        queue: "2v2".into(),
        slots: vec![bevygap_shared::schema::BackfillSlot { seat: 1, team: 0 }],
        attributes: Default::default(),
    };
    backfill_tx.send_replace(Some(wanted.clone()));
    wait_until_async("the lease to carry the backfill", WAIT, || async {
        let bytes = leases.get("dep-a").await.ok()??;
        (decode::<DeploymentLease>(&bytes).ok()?.backfill == Some(wanted.clone())).then_some(())
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
async fn reserved_seats_feed_admission_and_a_connected_client_holds_its_seat_until_it_leaves() {
    let (_server, nats, ledger, connections) = ledger_buckets().await;
    // A client of an earlier process with this id, never cleaned up.
    let mut phantom = reserved("dep-a", 2, 99);
    phantom.holder = SeatHolder::Connected {
        reservation_id: "r-99".into(),
        client_id: 99,
        connected_at_ms: 0,
    };
    ledger.take(&phantom, 0, None).await.unwrap();

    let admission = Arc::new(Mutex::new(Admission::new("dep-a")));
    let watcher = tokio::spawn(watch_seats(
        nats.clone(),
        ledger.clone(),
        context(),
        admission.clone(),
        Arc::new(Notify::new()),
    ));
    let dep = KeyToken::new("d", "dep-a").unwrap();
    wait_until_async("the phantom seat to be freed", WAIT, || async {
        ledger
            .current(&seat_key(&dep, 2))
            .await
            .ok()?
            .record
            .is_none()
            .then_some(())
    })
    .await;

    ledger
        .take(&reserved("dep-a", 1, 7), 0, Some(Duration::from_secs(15)))
        .await
        .unwrap();
    ledger
        .take(&reserved("dep-b", 0, 8), 0, Some(Duration::from_secs(15)))
        .await
        .unwrap();
    wait_until_async("the reservation to reach admission", WAIT, || async {
        (lock(&admission).pending() == 1).then_some(())
    })
    .await;
    let admitted = lock(&admission).admit(7, None, now_millis()).unwrap();
    assert_eq!(admitted.seat, 1);
    assert!(
        lock(&admission).admit(8, None, now_millis()).is_err(),
        "another server's reservation"
    );

    let recorder = ConnectionRecorder {
        connections: connections.clone(),
        seats: ledger.clone(),
        context: context(),
    };
    let revision = recorder
        .take_seat(
            7,
            &admitted.reservation_id,
            admitted.seat,
            admitted.revision,
        )
        .await
        .unwrap();
    recorder
        .record_connection(7, &admitted.reservation_id)
        .await
        .unwrap();
    let held = ledger.current(&seat_key(&dep, 1)).await.unwrap();
    assert!(matches!(
        held.record.map(|r| r.holder),
        Some(SeatHolder::Connected { client_id: 7, .. })
    ));
    assert!(
        connections
            .get(client_key(&dep, 7))
            .await
            .unwrap()
            .is_some()
    );
    // Taking it again for the same client and reservation (an answer lost on the way) is a
    // no-op; a stale admission of anyone else cannot take the seat: that client is let go.
    assert_eq!(
        recorder
            .take_seat(
                7,
                &admitted.reservation_id,
                admitted.seat,
                admitted.revision
            )
            .await
            .unwrap(),
        revision
    );
    assert!(
        recorder
            .take_seat(8, "r-8", admitted.seat, admitted.revision)
            .await
            .is_err()
    );

    recorder.free_seat(1, revision).await.unwrap();
    recorder.forget_connection(7).await.unwrap();
    assert_client_left(&ledger, &connections, 1, 7).await;
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_finds_reservations_without_the_watch_and_never_undoes_a_newer_state() {
    let (_server, _nats, ledger, _connections) = ledger_buckets().await;
    let first = ledger
        .take(&reserved("dep-a", 0, 5), 0, Some(Duration::from_secs(15)))
        .await
        .unwrap();
    ledger
        .take(&reserved("dep-a", 3, 6), 0, Some(Duration::from_secs(15)))
        .await
        .unwrap();

    // No watch runs: a knock's lookup alone brings both reservations.
    let admission = Arc::new(Mutex::new(Admission::new("dep-a")));
    look_up_seats(&ledger, &context(), &admission).await;
    assert_eq!(lock(&admission).pending(), 2);
    assert!(lock(&admission).check(5, now_millis()).is_ok());

    // Client 5 connected meanwhile (the table learnt it at its newer revision): a lookup that
    // read the seat earlier cannot bring the reservation back.
    let mut connected = reserved("dep-a", 0, 5);
    connected.holder = SeatHolder::Connected {
        reservation_id: "r-5".into(),
        client_id: 5,
        connected_at_ms: now_millis(),
    };
    let newer = ledger.take(&connected, first.revision, None).await.unwrap();
    lock(&admission).seat_changed(0, newer.revision);
    lock(&admission).reservation_added(
        0,
        first.revision,
        reserved("dep-a", 0, 5).reservation().unwrap(),
    );
    assert_eq!(
        lock(&admission).pending(),
        1,
        "only seat 3 is still reserved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_during_a_nats_outage_land_when_it_returns() {
    let (mut server, nats, ledger, connections) = ledger_buckets().await;
    let reserved_at = ledger
        .take(&reserved("dep-a", 1, 7), 0, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let (lost_tx, mut lost) = tokio::sync::mpsc::unbounded_channel();
    let (unsaved_tx, unsaved) = watch::channel(0usize);
    let recorder = ConnectionRecorder {
        connections: connections.clone(),
        seats: ledger.clone(),
        context: context(),
    };
    tokio::spawn(run_recorder(recorder, commands_rx, lost_tx, unsaved_tx));
    let dep = KeyToken::new("d", "dep-a").unwrap();
    let outage = |server: &mut NatsServer| {
        server.stop();
        let nats = nats.clone();
        async move {
            wait_until_async("the client to see NATS gone", WAIT, || async {
                (!matches!(nats.state(), ConnectionState::Connected { .. })).then_some(())
            })
            .await;
        }
    };
    let waiting = |n: usize| {
        let unsaved = unsaved.clone();
        async move {
            wait_until_async("the recorder's waiting writes", WAIT, || async {
                (*unsaved.borrow() == n).then_some(())
            })
            .await;
        }
    };

    // A client connects while NATS is down: its seat and record wait, then land.
    outage(&mut server).await;
    commands
        .send(SeatCommand::Opened {
            client_id: 7,
            reservation_id: "r-7".into(),
            seat: 1,
            revision: reserved_at.revision,
        })
        .unwrap();
    waiting(1).await;
    server.restart().unwrap();
    waiting(0).await;
    let held = ledger.current(&seat_key(&dep, 1)).await.unwrap();
    assert!(matches!(
        held.record.map(|r| r.holder),
        Some(SeatHolder::Connected { client_id: 7, .. })
    ));
    assert!(
        connections
            .get(client_key(&dep, 7))
            .await
            .unwrap()
            .is_some()
    );

    // It leaves during the next outage: its seat is freed when NATS returns.
    outage(&mut server).await;
    commands
        .send(SeatCommand::Closed {
            client_id: 7,
            seat: 1,
        })
        .unwrap();
    waiting(1).await;
    server.restart().unwrap();
    waiting(0).await;
    assert_client_left(&ledger, &connections, 1, 7).await;
    assert!(lost.try_recv().is_err(), "nobody lost a seat");
}
