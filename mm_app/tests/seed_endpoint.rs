//! The seed-compatible JSON endpoint `/matchmaker/ws`, against a real matchmaker on a real
//! nats-server, with a game server's lease written to KV.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use base64::Engine;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_shared::protocol::seed_json::SeedResponse;
use support::app_harness::*;
use support::core_harness::{GAME, VERSION, lease};

fn request() -> String {
    format!(r#"{{"game":"{GAME}","version":"{VERSION}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_the_seed_sequence_ending_in_session_ready_then_a_normal_close() {
    let h = AppHarness::start().await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    // The lease reaches the matchmaker through its KV watch; retry until a seat is offered.
    let (replies, closed_normally) = loop {
        let (replies, closed) = seed_conversation(&h.mm().seed_url(), &request()).await;
        if !matches!(replies.last(), Some(SeedResponse::Error(503, _))) {
            break (replies, closed);
        }
    };
    assert_eq!(replies[0], SeedResponse::Acknowledged);
    assert!(
        matches!(&replies[1], SeedResponse::SessionRequestAccepted(id) if id.starts_with("t-"))
    );
    let Some(SeedResponse::SessionReady {
        token,
        ip,
        port,
        cert_digest,
    }) = replies.last()
    else {
        panic!("no SessionReady: {replies:?}");
    };
    assert_eq!(
        (ip.as_str(), *port, cert_digest.as_str()),
        ("127.0.0.1", 6420, "")
    );
    let token = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    assert_eq!(token.len(), 2048);
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, SeedResponse::ProgressReport(_)))
    );
    assert!(closed_normally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_gets_a_400_error_and_a_normal_close() {
    let h = AppHarness::start().await;
    for bad in [
        "{not json",
        r#"{"game":"x"}"#,
        "[]",
        r#"{"game":"a b","version":"1"}"#,
    ] {
        let (replies, closed_normally) = seed_conversation(&h.mm().seed_url(), bad).await;
        assert!(
            matches!(replies.as_slice(), [SeedResponse::Error(400, _)]),
            "{bad}: {replies:?}"
        );
        assert!(closed_normally);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_gets_a_413_error() {
    let h = AppHarness::start().await;
    let big = format!(r#"{{"game":"{}","version":"1"}}"#, "x".repeat(10_000));
    let (replies, closed_normally) = seed_conversation(&h.mm().seed_url(), &big).await;
    assert!(
        matches!(replies.as_slice(), [SeedResponse::Error(413, _)]),
        "{replies:?}"
    );
    assert!(closed_normally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_game_gets_a_404_error() {
    let h = AppHarness::start().await;
    let (replies, _) =
        seed_conversation(&h.mm().seed_url(), r#"{"game":"tetris","version":"1"}"#).await;
    assert!(
        matches!(replies.last(), Some(SeedResponse::Error(404, text)) if text.contains(GAME)),
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_fleet_without_a_free_seat_answers_503_no_capacity() {
    let h = AppHarness::start().await;
    let (replies, _) = seed_conversation(&h.mm().seed_url(), &request()).await;
    assert!(
        matches!(replies.last(), Some(SeedResponse::Error(503, _))),
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_from_one_ip_are_refused_with_429() {
    let h = AppHarness::start_with(Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    })
    .await;
    let url = h.mm().seed_url();
    let (_a, _) = tokio_tungstenite::connect_async(&url).await.expect("first");
    let (_b, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("second");
    let third = tokio_tungstenite::connect_async(&url).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        other => panic!("third connection was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_its_request_is_timed_out_cleanly() {
    let h = AppHarness::start_with(Limits {
        request_timeout: std::time::Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    use futures::StreamExt;
    let (mut ws, _) = tokio_tungstenite::connect_async(h.mm().seed_url())
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reply = SeedResponse::parse(first.to_text().unwrap()).unwrap();
    assert!(matches!(reply, SeedResponse::Error(408, _)), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_exits_while_starting_fails_the_ticket_at_once_with_why() {
    use bevygap_matchmaker::app::FleetChoice;
    use bevygap_matchmaker::fleet::local::LocalFleetConfig;
    // The "game server" exits with status 3 before registering.
    let crashing = LocalFleetConfig {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        ports: 46_100..=46_199,
        ..LocalFleetConfig::default()
    };
    let h = AppHarness::start_with_fleet(Limits::default(), FleetChoice::Local(crashing)).await;
    let (replies, _) = seed_conversation(&h.mm().seed_url(), &request()).await;
    let Some(SeedResponse::Error(code, text)) = replies.last() else {
        panic!("{replies:?}")
    };
    assert_eq!(*code, 502, "{text}");
    assert!(text.contains("stopped while starting"), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_server_that_exits_is_dropped_before_its_lease_lapses() {
    use bevygap_matchmaker::app::FleetChoice;
    use bevygap_matchmaker::fleet::local::LocalFleetConfig;
    use bevygap_test_support::wait_until_async;
    let dir = tempfile::tempdir().unwrap();
    let (id_file, quit_file) = (dir.path().join("id"), dir.path().join("quit"));
    // The "game server" tells its id, then runs until told to quit, and exits with status 4.
    let script = format!(
        "echo $BEVYGAP_DEPLOYMENT_ID > {}; while [ ! -f {} ]; do sleep 0.02; done; exit 4",
        id_file.display(),
        quit_file.display()
    );
    let fleet = LocalFleetConfig {
        command: vec!["sh".into(), "-c".into(), script],
        ports: 46_200..=46_299,
        ..LocalFleetConfig::default()
    };
    let h = AppHarness::start_with_fleet(Limits::default(), FleetChoice::Local(fleet)).await;
    let url = h.mm().seed_url();
    let session = tokio::spawn(async move { seed_conversation(&url, &request()).await });
    let id = wait_until_async("the server started", WAIT, || async {
        let id = std::fs::read_to_string(&id_file).ok()?;
        (!id.trim().is_empty()).then(|| id.trim().to_owned())
    })
    .await;
    // It registers (the test writes the lease the server would) and the player is served.
    h.put_lease(&lease(&id, 4, 6420)).await;
    let (replies, _) = session.await.unwrap();
    assert!(
        matches!(replies.last(), Some(SeedResponse::SessionReady { .. })),
        "{replies:?}"
    );

    std::fs::write(&quit_file, b"").unwrap();
    wait_until_async("the exited server dropped", WAIT, || async {
        let summary = rpc(h.inspect_port, "bevygap/summary", serde_json::json!(null)).await;
        let deployments = summary["result"]["deployments"].as_array()?.clone();
        deployments
            .iter()
            .all(|d| d["id"] != id.as_str())
            .then_some(())
    })
    .await;
    assert!(
        h.stores.leases.get(&id).await.unwrap().is_some(),
        "dropped before its lease lapsed"
    );
}
