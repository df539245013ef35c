//! The shipped templates in `assets/`: the NATS users (`nats-auth.conf`) on a real nats-server,
//! where each role can do its job and nothing beyond it, and the game server's environment.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::time::Duration;

use bevygap_example_game::GAME;
use bevygap_example_game::demo::{NATS_AUTH_TEMPLATE, NatsRoles};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{
    BucketSpec, NatsConnection, NatsSettings, connect, ensure_bucket, open_bucket,
};
use bevygap_shared::secret::Secret;
use bevygap_test_support::{NatsServer, NatsServerOptions};

async fn start() -> (NatsServer, NatsRoles) {
    let roles = NatsRoles::generate();
    let server = NatsServer::start_with(NatsServerOptions {
        extra_config: Some(NATS_AUTH_TEMPLATE.replace("APP_NAME", GAME)),
        env: roles.server_env(),
        ..NatsServerOptions::default()
    })
    .unwrap();
    (server, roles)
}

async fn login(server: &NatsServer, user: &str, password: &str) -> NatsConnection {
    let mut settings = NatsSettings::insecure(server.address());
    settings.user = Some(user.into());
    settings.password = Some(Secret::new(password));
    connect(&settings, "roles-test").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_server_keeps_its_lease_but_cannot_touch_the_fleet_or_other_apps() {
    let (server, roles) = start().await;
    let names = AppNames::new(GAME).unwrap();
    let game_server = login(&server, "gameserver", &roles.gameserver).await;
    // Refused requests go unanswered: do not wait the default 10 s for each.
    let mut js = game_server.jetstream().clone();
    js.set_timeout(Duration::from_secs(1));
    let js = &js;

    // The matchmaker makes the buckets and owns their settings.
    let matchmaker = login(&server, "matchmaker", &roles.matchmaker).await;
    for spec in [
        BucketSpec::leases(&names),
        BucketSpec::seats(&names),
        BucketSpec::connections(&names),
    ] {
        ensure_bucket(matchmaker.jetstream(), &spec).await.unwrap();
    }
    let leases = open_bucket(js, &names.leases_bucket()).await.unwrap();
    leases.put("dep-1", "{}".into()).await.unwrap();
    let connections = open_bucket(js, &names.connections_bucket()).await.unwrap();
    connections.put("dep-1.42", "{}".into()).await.unwrap();
    let seats = open_bucket(js, &names.reservations_bucket()).await.unwrap();
    seats.put("dep-1.0", "{}".into()).await.unwrap();
    // Regression: servers re-created buckets with their own settings (last writer won).
    assert!(
        ensure_bucket(
            js,
            &BucketSpec::leases_with_ttl(&names, Duration::from_secs(99))
        )
        .await
        .is_err(),
        "game servers cannot change bucket settings"
    );

    let fleet = ensure_bucket(js, &BucketSpec::fleet_removals(&names)).await;
    assert!(
        fleet.is_err(),
        "game servers cannot create the fleet bucket"
    );
    // The pooled queue tickets (with their players' connect tokens) are the matchmakers' alone.
    let pool = ensure_bucket(matchmaker.jetstream(), &BucketSpec::queue_tickets(&names))
        .await
        .unwrap();
    pool.put("t-1", "{}".into()).await.unwrap();
    assert!(pool.entry("t-1").await.unwrap().is_some());
    assert!(
        open_bucket(js, &names.queue_tickets_bucket())
            .await
            .is_err(),
        "game servers cannot open the pooled queue tickets"
    );
    let other_app = AppNames::new("someone-elses-game").unwrap();
    assert!(
        ensure_bucket(js, &BucketSpec::leases(&other_app))
            .await
            .is_err(),
        "nor another app's buckets"
    );

    // The matchmaker creates the fleet bucket; a game server still cannot write to it.
    let removals = ensure_bucket(matchmaker.jetstream(), &BucketSpec::fleet_removals(&names))
        .await
        .unwrap();
    removals.put("deployment.abc", "{}".into()).await.unwrap();
    let ack = tokio::time::timeout(
        Duration::from_secs(5),
        js.publish("$KV.bevygap-demo_fleet_removals.deployment.abc", "x".into()),
    )
    .await
    .unwrap();
    let refused = match ack {
        Err(_) => true,
        Ok(ack) => tokio::time::timeout(Duration::from_secs(2), ack)
            .await
            .map_or(true, |r| r.is_err()),
    };
    assert!(
        refused,
        "a game server's write to the fleet bucket is refused"
    );
    let log = server.log();
    for subject in [
        "$JS.API.STREAM.UPDATE.KV_bevygap-demo_leases",
        "$JS.API.STREAM.UPDATE.KV_bevygap-demo_fleet_removals",
        "$JS.API.STREAM.UPDATE.KV_someone-elses-game_leases",
        "$KV.bevygap-demo_fleet_removals.deployment.abc",
    ] {
        assert!(
            log.contains(&format!("Publish Violation - Subject \"{subject}\"")),
            "{subject} not refused by permissions:\n{log}"
        );
    }
    assert!(
        !log.contains("Publish Violation - Subject \"$KV.bevygap-demo_leases"),
        "lease writes are allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused() {
    let (server, _) = start().await;
    let mut settings = NatsSettings::insecure(server.address());
    settings.user = Some("gameserver".into());
    settings.password = Some(Secret::new("guess"));
    assert!(connect(&settings, "roles-test").await.is_err());
}

#[test]
fn the_game_server_env_template_names_only_real_settings() {
    let text = include_str!("../../assets/gameserver.env.example");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_example_server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let names = bevygap_test_support::env_template_names(text);
    assert!(names.len() >= 5);
    for name in names {
        assert!(
            bevygap_test_support::help_names_env(&help, name),
            "{name} is not a setting"
        );
    }
}
