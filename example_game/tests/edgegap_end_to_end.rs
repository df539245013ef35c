//! The Edgegap flow on one machine: the matchmaker's Edgegap backend asks the offline Edgegap
//! replica for deployments, the replica starts real example game servers with the `ARBITRIUM_*`
//! environment and context API, and bots connect over real netcode.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevygap_edgegap_replica::Route;
use bevygap_example_game::bot::BotOutcome;
use bevygap_example_game::demo::{DemoConfig, DemoEnv, DemoFleet, ReplicaOptions, run_bots};
use support::{demo_config, request_session, wait_for};

fn config(options: ReplicaOptions) -> DemoConfig {
    demo_config(DemoFleet::EdgegapReplica(options))
}

fn assert_all_played(outcomes: &[BotOutcome]) {
    for outcome in outcomes {
        assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcomes:?}");
    }
}

#[test]
fn players_reach_game_servers_started_through_the_edgegap_api() {
    let config = config(ReplicaOptions::default());
    let env = DemoEnv::start(&config).unwrap();
    let outcomes = run_bots(
        &env.simplenet_url(),
        config.bots,
        config.play_for,
        Duration::ZERO,
    );
    assert_all_played(&outcomes);
    assert_eq!(env.observed(|o| o.connections_seen.len()), 3);

    let replica = env.replica.as_ref().unwrap();
    let deployments = replica.deployments();
    assert!(deployments.len() >= 2, "3 players on 2-seat servers");
    for deployment in &deployments {
        let hidden: Vec<&str> = deployment
            .env
            .iter()
            .filter(|(_, _, hidden)| *hidden)
            .map(|(k, _, _)| k.as_str())
            .collect();
        assert_eq!(hidden, ["LIGHTYEAR_PRIVATE_KEY"], "the key travels hidden");
    }
    env.observed(|o| {
        for deployment in &deployments {
            // The server learned its context from Edgegap: the lease names the deployment by its
            // request id, with the FQDN and location from the context API and the external port.
            let lease = &o.leases[&deployment.request_id];
            let (_, internal, external) = deployment.ports[0];
            assert_ne!(internal, external, "the replica maps ports as Edgegap does");
            assert_eq!(
                lease.public_addr.port(),
                external,
                "players dial the external port"
            );
            assert_eq!(lease.capacity, 2, "from the version's start arguments");
            assert_eq!(
                lease.fqdn.as_deref(),
                Some(format!("{}.replica.localhost", deployment.request_id).as_str())
            );
            assert_eq!(lease.location.as_ref().unwrap().region, "Loopback");
        }
    });

    // Empty servers are stopped through DELETE /v1/stop, and the matchmaker's inspection shows
    // no stop left unconfirmed.
    wait_for("every deployment stopped", || {
        replica.deployments().iter().all(|d| d.stopped)
    });
    wait_for("no pending stops", || {
        let summary = env
            .block_on(bevygap_test_support::json_rpc(
                env.inspect_port,
                "bevygap/summary",
                serde_json::json!(null),
            ))
            .unwrap_or_default();
        let fleet = &summary["result"]["fleet"];
        fleet["backend"] == "edgegap" && fleet["pending_stops"] == serde_json::json!([])
    });
}

#[test]
fn seat_sessions_bring_players_to_the_deployment_edgegap_links() {
    let config = config(ReplicaOptions {
        mode: bevygap_matchmaker::fleet::edgegap::fleet::EdgegapMode::Sessions,
        ..ReplicaOptions::default()
    });
    let env = DemoEnv::start(&config).unwrap();
    let outcomes = run_bots(&env.simplenet_url(), 2, config.play_for, Duration::ZERO);
    assert_all_played(&outcomes);
    let replica = env.replica.as_ref().unwrap();
    assert!(
        replica
            .calls()
            .iter()
            .any(|c| c.route == Route::CreateSession && c.status == 200)
    );
    let _report = Report(replica);
    wait_for("sessions deleted and deployments stopped", || {
        replica.deployments().iter().all(|d| d.stopped)
            && replica
                .calls()
                .iter()
                // 404 when the deployment's stop already took its sessions along.
                .any(|c| c.route == Route::DeleteSession && matches!(c.status, 200 | 404))
    });
}

/// The error the matchmaker answers a session request with, if any.
fn session_error(env: &DemoEnv) -> Option<(u16, String)> {
    request_session(env).err()
}

#[test]
fn a_deployment_that_never_becomes_ready_ends_the_ticket_with_a_clear_error_and_is_stopped() {
    let config = config(ReplicaOptions {
        ready_after: None,
        ready_timeout: Duration::from_secs(2),
        launch_servers: false,
        ..ReplicaOptions::default()
    });
    let env = DemoEnv::start(&config).unwrap();
    let (code, text) = session_error(&env).expect("the ticket fails");
    assert!(code >= 500, "{code}: {text}");
    assert!(text.contains("not ready after 2 s"), "{text}");
    assert!(text.contains("Status.DEPLOYING"), "{text}");
    let replica = env.replica.as_ref().unwrap();
    wait_for("the deployment stopped", || {
        let deployments = replica.deployments();
        !deployments.is_empty() && deployments.iter().all(|d| d.stopped)
    });
}

#[test]
fn a_storm_of_429_is_absorbed_without_dropping_tickets() {
    let config = config(ReplicaOptions::default());
    let env = DemoEnv::start(&config).unwrap();
    let replica = env.replica.as_ref().unwrap();
    replica.inject(Route::Deploy, 429, 10);
    replica.inject(Route::Status, 429, 10);
    let outcomes = run_bots(&env.simplenet_url(), 4, config.play_for, Duration::ZERO);
    assert_all_played(&outcomes);
    let rate_limited = |route| {
        replica
            .calls()
            .iter()
            .filter(|c| c.route == route && c.status == 429)
            .count()
    };
    // Players can be placed as soon as a lease appears, while the status polls still wait out
    // their share of the storm: wait for the storm to be spent.
    wait_for("every injected 429 met and waited out", || {
        rate_limited(Route::Deploy) == 10 && rate_limited(Route::Status) == 10
    });
}

#[test]
fn servers_reach_a_tls_nats_as_their_own_deployment_with_the_ca_given_as_the_seeds_ca_contents_argument()
 {
    // The CA is too long for an Edgegap environment variable: the version's start arguments carry
    // it (`bevygap_edgegap set-ca-argument`), and the CA file path is not forwarded. No NATS
    // password is handed to the deployment either: each server proves its deployment to the
    // matchmaker's auth callout with its Edgegap context and gets a user scoped to it.
    let mut config = config(ReplicaOptions::default());
    config.nats_tls = true;
    config.nats_roles = true;
    let env = DemoEnv::start(&config).unwrap();
    let outcomes = run_bots(&env.simplenet_url(), 2, config.play_for, Duration::ZERO);
    assert_all_played(&outcomes);
    let replica = env.replica.as_ref().unwrap();
    for deployment in replica.deployments() {
        assert!(
            deployment.env.iter().all(|(k, _, _)| ![
                "NATS_CA",
                "NATS_INSECURE",
                "NATS_USER",
                "NATS_PASSWORD"
            ]
            .contains(&k.as_str())),
            "{:?}",
            deployment.env
        );
    }
    assert!(env.observed(|o| o.leases_added.len()) >= 1);
    let log = env.nats_server.log();
    assert!(
        !log.contains("authentication error"),
        "a server was refused:\n{log}"
    );
    assert!(
        !log.contains("Violation"),
        "a role was refused something:\n{log}"
    );
}

#[test]
fn a_server_that_exits_during_start_up_fails_the_ticket_with_edgegaps_error() {
    // A bad setting makes every game server exit at once; Edgegap reports the deployment in
    // error, and the player hears why instead of waiting for the ticket's timeout.
    let mut config = config(ReplicaOptions {
        ready_after: Some(Duration::from_secs(5)),
        ..ReplicaOptions::default()
    });
    config.transport = "carrier-pigeon".into();
    let env = DemoEnv::start(&config).unwrap();
    let (code, text) = session_error(&env).expect("the ticket fails");
    assert!(code >= 500, "{code}: {text}");
    assert!(text.contains("Status.ERROR"), "{text}");
    assert!(text.contains("exited"), "{text}");
}

/// Prints the replica's calls and deployments if the test fails past this point.
struct Report<'a>(&'a bevygap_edgegap_replica::ReplicaHandle);

impl Drop for Report<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("replica calls: {:#?}", self.0.calls());
            eprintln!("replica deployments: {:#?}", self.0.deployments());
        }
    }
}

#[test]
fn an_edgegap_outage_fails_tickets_clearly_and_the_next_player_is_served_once_it_ends() {
    let config = config(ReplicaOptions::default());
    let env = DemoEnv::start(&config).unwrap();
    let replica = env.replica.as_ref().unwrap();
    replica.inject(Route::Deploy, 503, 1_000);
    let (code, text) = session_error(&env).expect("the ticket fails during the outage");
    assert!(code >= 500, "{code}: {text}");
    assert!(text.contains("Edgegap failed (503)"), "{text}");

    replica.clear_faults();
    assert_eq!(session_error(&env), None, "served once Edgegap is back");
}
