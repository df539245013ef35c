//! The whole flow on one machine: a real nats-server, the matchmaker with the local fleet, the
//! example game server started on demand, and bots and raw lightyear clients over real netcode.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevygap_example_game::GAME;
use bevygap_example_game::PROTOCOL_ID;
use bevygap_example_game::bot::BotOutcome;
use bevygap_example_game::demo::{DemoConfig, DemoEnv, DemoFleet, run_bots};
use bevygap_matchmaker::kv_bridge::KvStores;
use bevygap_shared::names::{AppNames, KeyToken, seat_key};
use bevygap_shared::nats::{BucketSpec, NatsSettings, SeatLedger, connect};
use bevygap_shared::schema::Transport;
use bevygap_shared::token_data::TokenUserData;
use lightyear::netcode::ConnectToken;
use support::{
    RawClient, connect_retrying_denials, demo_config, request_session, settle, try_connect,
    wait_for,
};

fn config(token_expire_secs: u32) -> DemoConfig {
    DemoConfig {
        token_expire_secs,
        ..demo_config(DemoFleet::Local)
    }
}

/// A session over the seed JSON endpoint; the test fails if the matchmaker answers an error.
fn session(env: &DemoEnv) -> (Vec<u8>, std::net::SocketAddr) {
    request_session(env).unwrap_or_else(|(code, text)| panic!("matchmaker error {code}: {text}"))
}

#[test]
fn players_connect_through_the_matchmaker_leave_and_the_empty_servers_are_stopped() {
    let config = config(15);
    let env = DemoEnv::start(&config).unwrap();
    let outcomes = run_bots(
        &env.simplenet_url(),
        config.bots,
        config.play_for,
        Duration::from_millis(100),
    );
    for outcome in &outcomes {
        assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcomes:?}");
    }
    // Confirmed on the server side: every bot's connection key was written by a game server.
    assert_eq!(env.observed(|o| o.connections_seen.len()), config.bots);
    // Three players on two-seat servers: the fleet started two servers.
    assert_eq!(env.observed(|o| o.leases_added.len()), 2);
    // Leaving frees the seat: the connection keys are gone.
    wait_for("every connection key to be removed", || {
        env.observed(|o| o.connections_now.is_empty())
    });
    // Empty past their TTL, the servers are stopped and their leases removed.
    wait_for("the empty servers to be stopped", || {
        env.observed(|o| o.leases_removed.len() == o.leases_added.len())
    });
}

#[test]
fn reused_expired_and_foreign_tokens_are_refused() {
    let env = DemoEnv::start(&config(3)).unwrap();
    let (token, server) = session(&env);

    // First use connects; the same token again is refused.
    try_connect(&token).expect("the first use connects");
    let reused = try_connect(&token).expect_err("a reused token connected");
    assert!(reused.contains("ConnectionDenied"), "{reused}");

    // A token minted with the right key but without a reservation on this server (as if it were
    // issued for another deployment) is refused.
    let data = TokenUserData {
        deployment_id: "another-server".into(),
        reservation_id: "r-forged".into(),
        expires_at_ms: bevygap_shared::time::now_millis() + 10_000,
        team: None,
    };
    let foreign = ConnectToken::build(server, PROTOCOL_ID, 4_242_424_242, env.key)
        .expire_seconds(10)
        .timeout_seconds(3)
        .user_data(data.encode().unwrap())
        .generate()
        .unwrap()
        .try_into_bytes()
        .unwrap();
    let refused = try_connect(&foreign).expect_err("a token for another server connected");
    assert!(refused.contains("ConnectionDenied"), "{refused}");

    // A token whose reservation has expired is refused with an answer, not left to time out.
    let (expiring, _) = session(&env);
    let expiry = Instant::now() + Duration::from_secs(4);
    wait_for("the reservation to expire", || Instant::now() > expiry);
    let expired = try_connect(&expiring).expect_err("an expired token connected");
    assert!(expired.contains("ConnectionDenied"), "{expired}");
}

#[test]
fn a_token_connects_once_even_when_raced_and_replayed_from_other_addresses() {
    let env = DemoEnv::start(&config(15)).unwrap();
    let (token, _) = session(&env);

    // Two copies race from two addresses before either has used the token.
    let mut racers = [RawClient::start(&token), RawClient::start(&token)];
    settle(&mut racers);
    let winners = racers
        .iter()
        .filter(|c| matches!(c.outcome, Some(Ok(()))))
        .count();
    assert_eq!(winners, 1, "{:?}", racers.map(|c| c.outcome));
    wait_for("the connection to be recorded", || {
        env.observed(|o| o.connections_seen.len() == 1)
    });

    // While the winner plays, a third address replays it.
    let replayed = try_connect(&token).expect_err("a replayed token connected");
    assert!(!replayed.is_empty());
    assert_eq!(
        env.observed(|o| o.connections_seen.len()),
        1,
        "one token, one connection"
    );
    for racer in racers {
        racer.disconnect();
    }
}

#[test]
fn a_nats_restart_between_the_token_and_the_connection_loses_nothing() {
    let mut env = DemoEnv::start(&config(15)).unwrap();
    let (token, _) = session(&env);
    env.nats_server.restart().unwrap();
    // The server may learn of the reservation only once its watch is back: the first handshake
    // can be denied, and the client plugin tries again (as here).
    connect_retrying_denials(&token, 8).expect("the reservation outlives the restart");
}

#[test]
fn tampered_tokens_never_connect_and_leave_the_seat_to_the_genuine_one() {
    let env = DemoEnv::start(&config(15)).unwrap();
    let (token, _) = session(&env);
    // The protocol id, the expiry, and two places in the encrypted private part.
    let mut tampered: Vec<RawClient> = [15usize, 33, 100, 700]
        .iter()
        .map(|&at| {
            let mut bytes = token.clone();
            bytes[at] ^= 0x10;
            RawClient::start(&bytes)
        })
        .collect();
    settle(&mut tampered);
    for client in &tampered {
        assert!(
            matches!(client.outcome, Some(Err(_))),
            "{:?}",
            client.outcome
        );
    }
    try_connect(&token).expect("the genuine token still connects");
}

#[test]
fn the_seats_of_a_server_killed_outright_are_freed_within_the_lease_ttl_and_a_second() {
    let env = DemoEnv::start(&config(15)).unwrap();
    // A server nobody supervises (as on Edgegap or a static list): only its lease tells.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_example_server"))
        .env("NATS_HOST", env.nats_server.address())
        .env("NATS_INSECURE", "true")
        .env("LIGHTYEAR_PRIVATE_KEY", hex::encode(env.key))
        .env("BEVYGAP_DEPLOYMENT_ID", "static-killed")
        .env("BEVYGAP_PUBLIC_IP", "127.0.0.1")
        .env("BEVYGAP_PORT", port.to_string())
        .env("BEVYGAP_APP_NAME", GAME)
        .env("BEVYGAP_APP_VERSION", bevygap_example_game::VERSION)
        .env("BEVYGAP_CAPACITY", "4")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the server's lease", || {
        env.observed(|o| o.leases.contains_key("static-killed"))
    });
    let (token, addr) = session(&env);
    assert_eq!(addr.port(), port, "placed on the free server already up");
    let mut client = [RawClient::start(&token)];
    settle(&mut client);
    assert!(matches!(client[0].outcome, Some(Ok(()))));
    let seats = env.block_on(async {
        let nats = connect(&NatsSettings::insecure(env.nats_server.address()), "test")
            .await
            .unwrap();
        let names = AppNames::new(GAME).unwrap();
        KvStores::open(&nats, &names, 1).await.unwrap().seats
    });
    let deployment = KeyToken::new("d", "static-killed").unwrap();
    // Seats held, read from the stream leader (the server has four).
    let held = |seats: &SeatLedger| {
        env.block_on(async {
            let mut n = 0;
            for seat in 0..4 {
                let state = seats.current(&seat_key(&deployment, seat)).await.unwrap();
                n += usize::from(state.record.is_some());
            }
            n
        })
    };
    wait_for("the player's seat in the ledger", || held(&seats) == 1);

    server.kill().unwrap();
    let killed_at = Instant::now();
    let _ = server.wait();
    bevygap_test_support::wait_until(
        "the killed server's seats to be freed",
        BucketSpec::DEFAULT_LEASE_TTL + Duration::from_secs(1),
        || (held(&seats) == 0).then_some(()),
    );
    eprintln!("seats freed {:?} after SIGKILL", killed_at.elapsed());
}

#[test]
fn a_webtransport_server_is_reached_with_the_certificate_digest_from_its_lease() {
    let mut config = config(15);
    config.transport = "webtransport".into();
    config.bots = 1;
    let env = DemoEnv::start(&config).unwrap();
    let outcomes = run_bots(&env.simplenet_url(), 1, config.play_for, Duration::ZERO);
    assert!(
        matches!(outcomes[0], BotOutcome::Played { .. }),
        "{outcomes:?}"
    );
    assert_eq!(env.observed(|o| o.connections_seen.len()), 1);
    env.observed(|o| {
        assert!(!o.leases.is_empty());
        for lease in o.leases.values() {
            assert_eq!(lease.transport, Transport::WebTransport);
            assert!(lease.cert_digest.is_some(), "the lease carries the digest");
        }
    });
}

#[test]
fn the_client_reports_failure_instead_of_hanging() {
    // Nothing listens there: the websocket fails and the state ends in Failed.
    let port = bevygap_test_support::free_tcp_port().unwrap();
    let outcome = bevygap_example_game::bot::run_bot(
        &format!("ws://127.0.0.1:{port}/ws"),
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    assert!(
        matches!(&outcome, BotOutcome::Failed(reason) if reason.contains("matchmaker")),
        "{outcome:?}"
    );
}

#[test]
fn the_client_plugin_also_speaks_the_seed_json_endpoint() {
    let mut config = config(15);
    config.bots = 1;
    let env = DemoEnv::start(&config).unwrap();
    let outcome = bevygap_example_game::bot::run_bot_with(
        &env.seed_url(),
        bevygap_client_plugin::MatchmakerProtocol::SeedJson,
        config.play_for,
        Duration::from_secs(30),
    );
    assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcome:?}");
}

#[test]
fn role_users_of_the_shipped_nats_template_are_enough_for_the_whole_flow() {
    // The matchmaker connects as `matchmaker` (its role in assets/nats-auth.conf); each local game
    // server as its own deployment, with the user the matchmaker's auth callout scopes to it.
    let mut config = config(15);
    config.nats_roles = true;
    config.bots = 2;
    let env = DemoEnv::start(&config).unwrap();
    let outcomes = run_bots(&env.simplenet_url(), 2, config.play_for, Duration::ZERO);
    for outcome in &outcomes {
        assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcomes:?}");
    }
    wait_for("servers recorded both players", || {
        env.observed(|o| o.connections_seen.len()) == 2
    });
    wait_for("the empty server stopped and its lease removed", || {
        env.observed(|o| !o.leases_removed.is_empty())
    });
    let log = env.nats_server.log();
    assert!(
        !log.contains("Violation"),
        "a role was refused something:\n{log}"
    );
}
