//! Game servers' NATS users, each scoped to its own deployment by the matchmakers' auth callout,
//! on a real nats-server configured with the shipped `assets/nats-auth.conf`.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::push::OrderedConfig;
use bevygap_matchmaker::gameserver_auth::{
    GameServerAuth, GameServerAuthConfig, new_key, serve_callout,
};
use bevygap_shared::NatsError;
use bevygap_shared::names::{AppNames, KeyToken};
use bevygap_shared::nats::{
    BucketSpec, NatsConnection, NatsSettings, SeatLedger, WatchEvent, connect, ensure_bucket,
    open_bucket, spawn_watch,
};
use bevygap_shared::schema::{SeatHolder, SeatRecord};
use bevygap_shared::secret::Secret;
use bevygap_test_support::{NatsServer, NatsServerOptions};

const APP: &str = "callout-game";
const TEMPLATE: &str = include_str!("../../assets/nats-auth.conf");

struct Stack {
    server: NatsServer,
    names: AppNames,
    auth: Arc<GameServerAuth>,
    matchmaker: NatsConnection,
}

async fn start() -> Stack {
    let (seed, issuer) = new_key();
    let matchmaker_password = format!("{:032x}", rand::random::<u128>());
    let server = NatsServer::start_with(NatsServerOptions {
        extra_config: Some(TEMPLATE.replace("APP_NAME", APP)),
        env: vec![
            (
                "BEVYGAP_MATCHMAKER_PASSWORD".into(),
                matchmaker_password.clone(),
            ),
            (
                "BEVYGAP_GAMESERVER_PASSWORD".into(),
                format!("{:032x}", rand::random::<u128>()),
            ),
            ("BEVYGAP_CALLOUT_ISSUER".into(), issuer),
        ],
        ..NatsServerOptions::default()
    })
    .unwrap();
    let names = AppNames::new(APP).unwrap();
    let mut settings = NatsSettings::insecure(server.address());
    settings.user = Some("matchmaker".into());
    settings.password = Some(Secret::new(matchmaker_password));
    let matchmaker = connect(&settings, "matchmaker").await.unwrap();
    for spec in [
        BucketSpec::leases(&names),
        BucketSpec::seats(&names),
        BucketSpec::connections(&names),
    ] {
        ensure_bucket(matchmaker.jetstream(), &spec).await.unwrap();
    }
    let auth = Arc::new(
        GameServerAuth::new(
            &GameServerAuthConfig {
                seed,
                jwt_ttl: Duration::from_secs(600),
            },
            names.clone(),
        )
        .unwrap(),
    );
    serve_callout(&matchmaker, auth.clone()).await.unwrap();
    Stack {
        server,
        names,
        auth,
        matchmaker,
    }
}

impl Stack {
    /// Connects as a game server with `user` and `password`, on `deployment`'s inbox prefix.
    async fn login(
        &self,
        user: &str,
        password: &Secret,
        deployment: &KeyToken,
    ) -> Result<NatsConnection, NatsError> {
        let mut settings = NatsSettings::insecure(self.server.address());
        settings.user = Some(user.to_owned());
        settings.password = Some(password.clone());
        settings.inbox_prefix = Some(self.names.gameserver_inbox_prefix(deployment));
        settings.connect_timeout_ms = 3000;
        connect(&settings, "game-server").await
    }

    async fn game_server(&self, deployment: &KeyToken) -> NatsConnection {
        let credentials = self.auth.credentials(deployment);
        self.login(&credentials.user, &credentials.password, deployment)
            .await
            .unwrap()
    }
}

fn deployment(id: &str) -> KeyToken {
    KeyToken::new("deployment id", id).unwrap()
}

fn connected_seat(deployment: &str, seat: u32) -> SeatRecord {
    SeatRecord {
        deployment_id: deployment.into(),
        seat,
        holder: SeatHolder::Connected {
            reservation_id: "r-1".into(),
            client_id: 42,
            connected_at_ms: 1,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_server_writes_its_own_keys_and_nothing_of_anyone_else() {
    let stack = start().await;
    let names = &stack.names;
    let dep1 = deployment("dep-1");
    let game_server = stack.game_server(&dep1).await;
    // Refused requests go unanswered: do not wait the default 10 s for each.
    let mut js = game_server.jetstream().clone();
    js.set_timeout(Duration::from_secs(1));
    let js = &js;

    // Its lease and connection records: yes. Another deployment's: no.
    let leases = open_bucket(js, &names.leases_bucket()).await.unwrap();
    leases.put("dep-1", "{}".into()).await.unwrap();
    assert!(
        leases.put("dep-2", "{}".into()).await.is_err(),
        "other lease"
    );
    assert!(leases.delete("dep-2").await.is_err(), "delete other lease");
    let connections = open_bucket(js, &names.connections_bucket()).await.unwrap();
    connections.put("dep-1.42", "{}".into()).await.unwrap();
    assert!(
        connections.put("dep-2.42", "{}".into()).await.is_err(),
        "other connections"
    );

    // Its seats: compare-and-set writes, reads by subject and a watch. Another's: none of those.
    let store = open_bucket(js, &names.reservations_bucket()).await.unwrap();
    let seats = SeatLedger::new(store.clone(), js.clone()).with_direct_reads();
    let written = seats
        .take(&connected_seat("dep-1", 0), 0, None)
        .await
        .unwrap();
    let read = seats.current("dep-1.0").await.unwrap();
    assert_eq!(read.revision, written.revision);
    assert_eq!(read.record, Some(connected_seat("dep-1", 0)));
    assert!(
        seats
            .take(&connected_seat("dep-2", 0), 0, None)
            .await
            .is_err()
    );
    assert!(
        seats.current("dep-2.0").await.is_err(),
        "read another's seat"
    );
    let mut watch = spawn_watch(&game_server, store.clone(), "dep-1.>", 16);
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), watch.events.recv())
        .await
        .unwrap()
    {
        match event {
            WatchEvent::Put { key, .. } => seen.push(key),
            WatchEvent::Synced => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["dep-1.0"]);
    let everyone = store
        .stream
        .create_consumer(OrderedConfig {
            name: Some("snoop".into()),
            deliver_subject: game_server.client().new_inbox(),
            filter_subject: format!("$KV.{}.>", names.reservations_bucket()),
            ..Default::default()
        })
        .await;
    assert!(everyone.is_err(), "watch every deployment's seats");

    // No bucket settings, no purge, no deletes, no other bucket, no other app.
    assert!(
        ensure_bucket(
            js,
            &BucketSpec::leases_with_ttl(names, Duration::from_secs(99))
        )
        .await
        .is_err(),
        "stream update"
    );
    let mut leases_stream = js
        .get_stream(format!("KV_{}", names.leases_bucket()))
        .await
        .unwrap();
    assert!(leases_stream.purge().await.is_err(), "purge");
    assert!(
        js.delete_stream(format!("KV_{}", names.connections_bucket()))
            .await
            .is_err(),
        "stream delete"
    );
    assert!(
        ensure_bucket(js, &BucketSpec::fleet_removals(names))
            .await
            .is_err(),
        "fleet bucket"
    );
    let other_app = AppNames::new("someone-elses-game").unwrap();
    assert!(
        ensure_bucket(js, &BucketSpec::leases(&other_app))
            .await
            .is_err(),
        "other app"
    );

    // What the matchmaker sees: only the allowed writes, settings unchanged.
    let mm_js = stack.matchmaker.jetstream();
    let mm_connections = open_bucket(mm_js, &names.connections_bucket())
        .await
        .unwrap();
    assert!(mm_connections.get("dep-1.42").await.unwrap().is_some());
    assert!(mm_connections.get("dep-2.42").await.unwrap().is_none());
    let mm_leases = open_bucket(mm_js, &names.leases_bucket()).await.unwrap();
    assert!(mm_leases.get("dep-2").await.unwrap().is_none());
    let config = leases_stream.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, BucketSpec::leases(names).max_age);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_deployments_own_password_gets_a_user() {
    let stack = start().await;
    let (dep1, dep2) = (deployment("dep-1"), deployment("dep-2"));
    let theirs = stack.auth.credentials(&dep2);
    let ours = stack.auth.credentials(&dep1);

    let refused = |result: Result<NatsConnection, NatsError>| {
        matches!(result, Err(NatsError::AuthenticationFailed { .. }))
    };
    assert!(
        refused(stack.login(&ours.user, &theirs.password, &dep1).await),
        "another deployment's password"
    );
    assert!(
        refused(stack.login(&ours.user, &Secret::new("guess"), &dep1).await),
        "a guessed password"
    );
    assert!(
        refused(
            stack
                .login(&format!("{APP}:dep.1"), &ours.password, &dep1)
                .await
        ),
        "an invalid deployment id"
    );
    assert!(
        refused(
            stack
                .login("someone-elses-game:dep-1", &ours.password, &dep1)
                .await
        ),
        "another app's user (no matchmaker of this app answers)"
    );
    // And the right one still gets in.
    assert!(stack.login(&ours.user, &ours.password, &dep1).await.is_ok());
}

#[test]
fn the_operator_tool_makes_a_key_and_the_credentials_the_callout_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let tool = || std::process::Command::new(env!("CARGO_BIN_EXE_bevygap_gameserver_auth"));
    let seed_file = dir.path().join("callout.seed");
    let made = tool()
        .args(["new-key", "--seed-file"])
        .arg(&seed_file)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let public = String::from_utf8(made.stdout).unwrap();
    let seed = std::fs::read_to_string(&seed_file).unwrap();
    assert!(public.trim().starts_with('A') && seed.starts_with("SA"));
    assert!(!String::from_utf8_lossy(&made.stderr).contains(seed.trim()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&seed_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only its owner reads the seed");
    }
    let again = tool()
        .args(["new-key", "--seed-file"])
        .arg(&seed_file)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing seed is never overwritten"
    );
    assert_eq!(std::fs::read_to_string(&seed_file).unwrap(), seed);

    let password_file = dir.path().join("dep-1.password");
    let printed = tool()
        .args([
            "credentials",
            "--app",
            APP,
            "--deployment",
            "dep-1",
            "--seed-file",
        ])
        .arg(&seed_file)
        .arg("--password-file")
        .arg(&password_file)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let auth = GameServerAuth::new(
        &GameServerAuthConfig {
            seed: Secret::new(seed),
            jwt_ttl: Duration::from_secs(60),
        },
        AppNames::new(APP).unwrap(),
    )
    .unwrap();
    let expected = auth.credentials(&deployment("dep-1"));
    assert_eq!(
        String::from_utf8(printed.stdout).unwrap().trim(),
        format!("NATS_USER={}", expected.user)
    );
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap().trim(),
        expected.password.expose()
    );
}
