//! Seats sold once, on a real nats-server: two matchmakers on one NATS never sell a seat twice;
//! a matchmaker killed with SIGKILL and started again does not sell again the seats it sold; a
//! SIGTERM drains: waiting clients are told to retry, sockets close with 1001, the local fleet's
//! servers are stopped, the process exits.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_matchmaker::kv_bridge::KvStores;
use bevygap_matchmaker::spawn_matchmaker;
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{NatsSettings, connect};
use bevygap_shared::protocol::seed_json::SeedResponse;
use bevygap_shared::schema::{SeatRecord, decode, encode};
use bevygap_test_support::{NatsServer, free_tcp_port, wait_until, wait_until_async};
use futures::future::join_all;
use support::app_harness::{WAIT, app_config, rpc, seed_conversation};
use support::core_harness::{GAME, VERSION, lease};

fn request() -> String {
    format!(r#"{{"game":"{GAME}","version":"{VERSION}"}}"#)
}

/// The app's buckets on `nats_server`, with one server `dep-a` of `seats` seats registered.
async fn stores_with_lease(nats_server: &NatsServer, seats: u32) -> KvStores {
    let nats = connect(&NatsSettings::insecure(nats_server.address()), "test")
        .await
        .unwrap();
    let stores = KvStores::open(&nats, &AppNames::new(GAME).unwrap(), 1)
        .await
        .unwrap();
    stores
        .leases
        .put("dep-a", encode(&lease("dep-a", seats, 6420)).into())
        .await
        .unwrap();
    stores
}

/// A fresh nats-server with the buckets and `dep-a` (see [`stores_with_lease`]).
async fn nats_with_lease(seats: u32) -> (NatsServer, KvStores) {
    let nats_server = NatsServer::start().unwrap();
    let stores = stores_with_lease(&nats_server, seats).await;
    (nats_server, stores)
}

/// Every seat record in the ledger now, by key.
async fn ledger_seats(stores: &KvStores) -> Vec<SeatRecord> {
    use futures::StreamExt;
    let mut seats = Vec::new();
    let mut keys = stores.seats.store().keys().await.unwrap();
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        if let Some(value) = stores.seats.store().get(&key).await.unwrap() {
            seats.push(decode::<SeatRecord>(&value).unwrap());
        }
    }
    seats
}

/// How many conversations ended with a session.
fn sessions(replies: &[Vec<SeedResponse>]) -> usize {
    replies
        .iter()
        .filter(|r| matches!(r.last(), Some(SeedResponse::SessionReady { .. })))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_matchmakers_on_one_nats_never_sell_a_seat_twice() {
    let nats_server = NatsServer::start().unwrap();
    let limits = Limits {
        max_connections_per_ip: 1000,
        ..Limits::default()
    };
    let mut matchmakers = Vec::new();
    let mut inspect_ports = Vec::new();
    for _ in 0..2 {
        let inspect_port = free_tcp_port().unwrap();
        inspect_ports.push(inspect_port);
        let mut config = app_config(
            &nats_server,
            limits.clone(),
            inspect_port,
            FleetChoice::Static,
        );
        config.log_filter = std::env::var("TEST_LOG").ok();
        matchmakers.push(
            tokio::task::spawn_blocking(move || spawn_matchmaker(config))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let stores = stores_with_lease(&nats_server, 6).await;
    // Both see the server (a request for an unknown version fails fast and proves nothing);
    // wait until each has it by watching its summary.
    for mm in &matchmakers {
        let url = mm.seed_url();
        wait_until_async("each matchmaker to see dep-a", WAIT, || {
            let url = url.clone();
            async move {
                // A request placed on dep-a proves the matchmaker sees it; it takes a seat.
                let (replies, _) = seed_conversation(&url, &request()).await;
                matches!(replies.last(), Some(SeedResponse::SessionReady { .. })).then_some(())
            }
        })
        .await;
    }

    // Each knows the other is there (and so takes half of a fleet's rate budget).
    for port in &inspect_ports {
        wait_until_async("each matchmaker to count two", WAIT, || async {
            let summary = rpc(*port, "bevygap/summary", serde_json::Value::Null).await;
            (summary["result"]["matchmakers"] == 2).then_some(())
        })
        .await;
    }

    // 24 clients at once, half on each matchmaker, for the 4 seats left.
    let urls: Vec<String> = (0..24).map(|i| matchmakers[i % 2].seed_url()).collect();
    let replies: Vec<Vec<SeedResponse>> = join_all(
        urls.iter()
            .map(|url| async move { seed_conversation(url, &request()).await.0 }),
    )
    .await;
    assert_eq!(
        sessions(&replies),
        4,
        "exactly the 4 free seats are sold: {replies:?}"
    );
    for reply in &replies {
        match reply.last() {
            Some(SeedResponse::SessionReady { .. }) => {}
            Some(SeedResponse::Error(code, _)) => assert_eq!(*code, 503, "{reply:?}"),
            other => panic!("every client gets an answer, got {other:?}"),
        }
    }
    // The ledger holds six reserved seats, each for a different client.
    let seats = ledger_seats(&stores).await;
    let clients: HashSet<u64> = seats.iter().filter_map(|s| s.client_id()).collect();
    assert_eq!((seats.len(), clients.len()), (6, 6), "{seats:?}");
    assert!(seats.iter().all(|s| s.seat < 6));
}

/// A matchmaker process (the real binary) on the static fleet.
fn matchmaker_process(nats: &str, port: u16) -> Child {
    matchmaker_with(nats, port, &["--fleet", "static"])
}

/// A matchmaker process with extra flags.
fn matchmaker_with(nats: &str, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bevygap_matchmaker"))
        .args(extra)
        .args([
            "--app-name",
            GAME,
            "--app-version",
            VERSION,
            "--lightyear-protocol-id",
            "7",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--remote-port",
            "0",
            "--metrics-port",
            "0",
            "--nats-host",
            nats,
            "--nats-insecure",
            "--shutdown-grace-secs",
            "5",
        ])
        .env(
            "LIGHTYEAR_PRIVATE_KEY",
            "0303030303030303030303030303030303030303030303030303030303030303",
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A seed conversation, or `None` while nothing listens on `url` yet.
async fn try_conversation(url: &str) -> Option<Vec<SeedResponse>> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    drop(ws);
    Some(seed_conversation(url, &request()).await.0)
}

async fn wait_for_session(url: &str) -> Vec<SeedResponse> {
    wait_until_async("a session from the matchmaker", WAIT, || async {
        let replies = try_conversation(url).await?;
        matches!(replies.last(), Some(SeedResponse::SessionReady { .. })).then_some(replies)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matchmaker_killed_and_restarted_does_not_sell_again_the_seats_it_sold() {
    let (nats_server, stores) = nats_with_lease(3).await;
    let port = free_tcp_port().unwrap();
    let url = format!("ws://127.0.0.1:{port}/matchmaker/ws");
    let mut first = matchmaker_process(&nats_server.address(), port);
    wait_for_session(&url).await;
    for _ in 0..2 {
        let (replies, _) = seed_conversation(&url, &request()).await;
        assert!(matches!(
            replies.last(),
            Some(SeedResponse::SessionReady { .. })
        ));
    }
    // Killed without a chance to clean up.
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = matchmaker_process(&nats_server.address(), port);
    let refused = wait_until_async("the restarted matchmaker to answer", WAIT, || async {
        let replies = try_conversation(&url).await?;
        match replies.last() {
            Some(SeedResponse::Error(code, text)) => Some((*code, text.clone())),
            Some(SeedResponse::SessionReady { .. }) => panic!("a sold seat was sold again"),
            _ => None,
        }
    })
    .await;
    assert_eq!(refused.0, 503, "every seat is sold: {refused:?}");
    assert_eq!(ledger_seats(&stores).await.len(), 3);
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_waiting_clients_to_retry_closes_with_1001_and_exits() {
    let (nats_server, _stores) = nats_with_lease(1).await;
    let port = free_tcp_port().unwrap();
    let url = format!("ws://127.0.0.1:{port}/matchmaker/ws");
    // A local fleet whose servers never register: the second client waits for one.
    let mut child = matchmaker_with(
        &nats_server.address(),
        port,
        &["--fleet", "local", "--local-server-cmd", "sleep 60"],
    );
    wait_for_session(&url).await;

    let (texts_tx, mut texts) = tokio::sync::mpsc::unbounded_channel::<String>();
    let waiting = tokio::spawn({
        let url = url.clone();
        async move {
            use futures::{SinkExt, StreamExt};
            use tokio_tungstenite::tungstenite::Message;
            let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
            ws.send(Message::Text(request().into())).await.unwrap();
            loop {
                match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
                    Some(Ok(Message::Text(t))) => {
                        let _ = texts_tx.send(t.to_string());
                    }
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    _ => return None,
                }
            }
        }
    });
    // Waiting for a server to start.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = tokio::time::timeout_at(deadline, texts.recv())
            .await
            .unwrap()
            .unwrap();
        if text.contains("Starting a game server") {
            break;
        }
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let close = waiting.await.unwrap();
    let mut rest = Vec::new();
    while let Ok(text) = texts.try_recv() {
        rest.push(text);
    }
    assert!(
        rest.iter()
            .any(|t| t.contains("503") && t.contains("shutting down")),
        "{rest:?}"
    );
    assert_eq!(close, Some(1001));
    let pid = child.id();
    let status = wait_until("the process to exit", WAIT, || child.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    assert!(
        servers_started_by(pid).is_empty(),
        "the local fleet's servers are stopped with it"
    );
}

/// Processes whose environment names `pid` as the matchmaker that started them.
fn servers_started_by(pid: u32) -> Vec<u32> {
    let marker = format!("BEVYGAP_PARENT_PID={pid}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
        .collect()
}
