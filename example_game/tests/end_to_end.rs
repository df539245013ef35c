//! The whole flow on one machine: a real nats-server, the matchmaker with the local fleet, the
//! example game server started on demand, and bots and raw lightyear clients over real netcode.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevygap_example_game::bot::BotOutcome;
use bevygap_example_game::demo::{DemoConfig, DemoEnv, DemoFleet, run_bots};
use bevygap_example_game::{PROTOCOL_ID, TICK};
use bevygap_shared::schema::Transport;
use bevygap_shared::token_data::TokenUserData;
use lightyear::netcode::ConnectToken;
use lightyear::prelude::client::*;
use lightyear::prelude::*;
use support::{WAIT, demo_config, request_session, wait_for};

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

/// Connects a raw lightyear client with `token`; Ok once connected (then disconnects), Err with the
/// reason when refused.
fn try_connect(token: &[u8]) -> Result<(), String> {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(ClientPlugins {
        tick_duration: TICK,
    });
    app.finish();
    app.cleanup();
    let token = ConnectToken::try_from_bytes(token).map_err(|e| format!("{e:?}"))?;
    let netcode = NetcodeClient::new(
        Authentication::Token(token),
        lightyear::netcode::client_plugin::NetcodeConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let entity = app
        .world_mut()
        .spawn((
            netcode,
            LocalAddr(([0, 0, 0, 0], 0).into()),
            UdpIo::default(),
        ))
        .id();
    app.world_mut().trigger(Connect { entity });
    let deadline = Instant::now() + WAIT;
    loop {
        app.update();
        let world = app.world();
        if world.get::<Connected>(entity).is_some() {
            app.world_mut().trigger(Disconnect { entity });
            for _ in 0..5 {
                app.update();
                std::thread::sleep(TICK);
            }
            return Ok(());
        }
        if let Some(disconnected) = world.get::<Disconnected>(entity)
            && !matches!(disconnected.reason, DisconnectedReason::Unknown)
        {
            return Err(disconnected.reason.to_string());
        }
        assert!(
            Instant::now() < deadline,
            "no connect or refusal within {WAIT:?}"
        );
        std::thread::sleep(TICK);
    }
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

    // A token whose reservation has expired is refused.
    let (expiring, _) = session(&env);
    let expiry = Instant::now() + Duration::from_secs(4);
    wait_for("the reservation to expire", || Instant::now() > expiry);
    let expired = try_connect(&expiring).expect_err("an expired token connected");
    assert!(
        expired.contains("ConnectionDenied")
            || expired.contains("Expired")
            || expired.contains("TimedOut"),
        "{expired}"
    );
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
    // The matchmaker connects as `matchmaker` and game servers as `gameserver`, each limited to
    // its role by assets/nats-auth.conf.
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
