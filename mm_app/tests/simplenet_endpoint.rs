//! The bevy_simplenet endpoint `/ws` used by the client plugin: the session, statuses while a
//! ticket waits, cancel on disconnect, one request at a time.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use bevy_simplenet::{AuthRequest, Client, ClientConfig, ClientEvent, ClientFactory, ClientReport};
use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::fleet::local::LocalFleetConfig;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{
    CHANNEL_PROTOCOL_VERSION, ClientHello, MatchRequest, MatchResult, MatchStage,
    MatchmakerChannel, ServerMsg,
};
use bevygap_test_support::wait_until_async;
use support::app_harness::*;
use support::core_harness::{GAME, VERSION, lease};

fn client(url: &str, game: GameRef) -> Client<MatchmakerChannel> {
    ClientFactory::<MatchmakerChannel>::new(CHANNEL_PROTOCOL_VERSION).new_client(
        enfync::builtin::Handle::default(),
        url.parse().unwrap(),
        AuthRequest::None {
            client_id: rand_id(),
        },
        ClientConfig {
            reconnect_on_disconnect: false,
            reconnect_on_server_close: false,
            ..ClientConfig::default()
        },
        ClientHello {
            game,
            client_build: "test".into(),
        },
    )
}

fn rand_id() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Polls the client until `pick` accepts an event.
async fn next_matching<T>(
    client: &mut Client<MatchmakerChannel>,
    what: &str,
    mut pick: impl FnMut(ClientEvent<ServerMsg, MatchResult>) -> Option<T>,
) -> T {
    let client = std::sync::Mutex::new(client);
    wait_until_async(what, WAIT, || {
        let mut guard = client.lock().unwrap();
        let mut found = None;
        while let Some(event) = guard.next() {
            if let Some(v) = pick(event) {
                found = Some(v);
                break;
            }
        }
        async move { found }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simplenet_client_gets_a_session_on_a_running_server() {
    let h = AppHarness::start().await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    let mut c = client(&h.mm().simplenet_url(), GameRef::new(GAME, VERSION));
    next_matching(&mut c, "connected", |e| {
        matches!(e, ClientEvent::Report(ClientReport::Connected)).then_some(())
    })
    .await;
    // Wait until the matchmaker has seen the lease, via a throw-away seed request.
    loop {
        let (replies, _) = seed_conversation(
            &h.mm().seed_url(),
            &format!(r#"{{"game":"{GAME}","version":"{VERSION}"}}"#),
        )
        .await;
        if !matches!(
            replies.last(),
            Some(bevygap_shared::protocol::seed_json::SeedResponse::Error(
                503,
                _
            ))
        ) {
            break;
        }
    }
    c.request(MatchRequest::default());
    // Statuses are held back briefly and dropped when the answer comes first (see the
    // allocating status in the next test for one that is sent).
    let result = next_matching(&mut c, "a result", |e| match e {
        ClientEvent::Response(result, _) => Some(result),
        _ => None,
    })
    .await;
    let MatchResult::Ready(session) = result else {
        panic!("{result:?}")
    };
    assert_eq!(session.port, 6420);
    assert_eq!(session.connect_token.len(), 2048);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_game_is_refused_with_a_typed_error() {
    let h = AppHarness::start().await;
    let mut c = client(&h.mm().simplenet_url(), GameRef::new("tetris", "1"));
    next_matching(&mut c, "connected", |e| {
        matches!(e, ClientEvent::Report(ClientReport::Connected)).then_some(())
    })
    .await;
    c.request(MatchRequest::default());
    let result = next_matching(&mut c, "a result", |e| match e {
        ClientEvent::Response(result, _) => Some(result),
        _ => None,
    })
    .await;
    assert!(matches!(result, MatchResult::Failed(e) if e.code == ErrorCode::UnknownGame));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_cancels_the_pending_ticket() {
    // A local fleet whose "server" never registers: the ticket waits in Allocating.
    let never_ready = LocalFleetConfig {
        command: vec!["sleep".into(), "30".into()],
        ports: 46_000..=46_099,
        ..LocalFleetConfig::default()
    };
    let h = AppHarness::start_with_fleet(Limits::default(), FleetChoice::Local(never_ready)).await;
    let mut c = client(&h.mm().simplenet_url(), GameRef::new(GAME, VERSION));
    next_matching(&mut c, "connected", |e| {
        matches!(e, ClientEvent::Report(ClientReport::Connected)).then_some(())
    })
    .await;
    c.request(MatchRequest::default());
    // Waiting for a server: the status goes out once the grace period passes.
    next_matching(&mut c, "the allocating status", |e| match e {
        ClientEvent::Msg(ServerMsg::Status(s)) if s.stage == MatchStage::Allocating => Some(()),
        ClientEvent::Response(r, _) => panic!("unexpected result {r:?}"),
        _ => None,
    })
    .await;
    c.close();
    drop(c);
    let summary = wait_until_async("no ticket left", WAIT, || async {
        let reply = rpc(h.inspect_port, "bevygap/summary", serde_json::json!(null)).await;
        let t = &reply["result"]["tickets"];
        (t["queued"] == 0 && t["allocating"] == 0 && t["placed"] == 0).then_some(reply)
    })
    .await;
    assert_eq!(summary["result"]["reservations"]["issued"], 0);
}

/// A player token for `audience`, valid for `exp_in` seconds, signed with `secret`.
fn player_token(audience: &str, exp_in: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": "player-7", "aud": audience, "exp": now + exp_in }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_player_check_both_endpoints_want_a_token_from_the_games_backend() {
    use bevygap_matchmaker::player_check::{PlayerCheckConfig, PlayerKey};
    use bevygap_shared::protocol::seed_json::SeedResponse;
    const SECRET: &str = "the-backend-and-the-matchmaker-share-this";
    let h = AppHarness::start_adjusted(Limits::default(), FleetChoice::Static, |config| {
        config.player_check = Some(PlayerCheckConfig {
            key: PlayerKey::SharedSecret(bevygap_shared::secret::Secret::new(SECRET)),
            audience: "spaceships".into(),
            issuer: None,
        });
    })
    .await;

    // simplenet: no token is 401; a good one gets past the check (to the unknown game).
    let mut c = client(&h.mm().simplenet_url(), GameRef::new("tetris", "1"));
    next_matching(&mut c, "connected", |e| {
        matches!(e, ClientEvent::Report(ClientReport::Connected)).then_some(())
    })
    .await;
    for (token, expected) in [
        (None, ErrorCode::Unauthorized),
        (
            Some(player_token("spaceships", 60, SECRET)),
            ErrorCode::UnknownGame,
        ),
    ] {
        c.request(MatchRequest {
            player_token: token,
            ..MatchRequest::default()
        });
        let result = next_matching(&mut c, "a result", |e| match e {
            ClientEvent::Response(result, _) => Some(result),
            _ => None,
        })
        .await;
        assert!(
            matches!(&result, MatchResult::Failed(e) if e.code == expected),
            "{result:?}"
        );
    }

    // Seed JSON: an expired token and one for another game are 401, saying why.
    for (token, why) in [
        (player_token("spaceships", -60, SECRET), "expired"),
        (player_token("other-game", 60, SECRET), "audience"),
    ] {
        let request =
            format!(r#"{{"game":"{GAME}","version":"{VERSION}","player_token":"{token}"}}"#);
        let (replies, _) = seed_conversation(&h.mm().seed_url(), &request).await;
        assert!(
            matches!(replies.last(), Some(SeedResponse::Error(401, text)) if text.contains(why)),
            "{replies:?}"
        );
    }
    let summary = rpc(h.inspect_port, "bevygap/summary", serde_json::Value::Null).await;
    assert_eq!(summary["result"]["players_refused"], 3, "{summary}");
}
