//! Game servers' NATS users, each scoped to its own deployment by the matchmakers' auth callout,
//! on a real nats-server configured with the shipped `assets/nats-auth.conf`.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::push::OrderedConfig;
use bevygap_edgegap_replica::{AppSpec, ReplicaConfig, VersionSpec};
use bevygap_matchmaker::fleet::edgegap::api::{DeployRequest, DeploymentUser};
use bevygap_matchmaker::fleet::edgegap::client::{EdgegapApiConfig, EdgegapClient};
use bevygap_matchmaker::gameserver_auth::{
    EDGEGAP_CONTEXT_TIMEOUT, EdgegapContextCheck, GameServerAuth, GameServerAuthConfig, new_key,
    serve_callout,
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
    start_with(None).await
}

async fn start_with(edgegap: Option<EdgegapContextCheck>) -> Stack {
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
    let mut auth = GameServerAuth::new(
        &GameServerAuthConfig {
            seed,
            jwt_ttl: Duration::from_secs(600),
        },
        names.clone(),
    )
    .unwrap();
    if let Some(check) = edgegap {
        auth = auth.with_edgegap(check);
    }
    let auth = Arc::new(auth);
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
        // Longer than nats-server's wait for the callout (5 s), so a user nobody answers for is
        // refused rather than timed out.
        settings.connect_timeout_ms = 8000;
        connect(&settings, "game-server").await
    }

    async fn game_server(&self, deployment: &KeyToken) -> NatsConnection {
        let credentials = self.auth.credentials(deployment);
        self.login(&credentials.user, &credentials.password, deployment)
            .await
            .unwrap()
    }
}

/// Whether nats-server refused the login as unauthorized.
fn refused_now(result: &Result<NatsConnection, NatsError>) -> bool {
    matches!(result, Err(NatsError::AuthenticationFailed { .. }))
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

    let refused = |result: Result<NatsConnection, NatsError>| refused_now(&result);
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
    // Nobody answers for another app's user: nats-server drops the connection when its wait
    // for the callout ends, and nothing is ever served to it.
    match stack
        .login("someone-elses-game:dep-1", &ours.password, &dep1)
        .await
    {
        // Refused outright, or not answered before the client gave up: never served.
        Err(_) => {}
        Ok(connection) => {
            let mut js = connection.jetstream().clone();
            js.set_timeout(Duration::from_secs(8));
            assert!(
                js.query_account().await.is_err(),
                "served another app's user"
            );
            bevygap_test_support::wait_until_async(
                "another app's user dropped",
                Duration::from_secs(10),
                || {
                    let connected = connection.state().is_connected();
                    async move { (!connected).then_some(()) }
                },
            )
            .await;
            assert!(
                stack
                    .server
                    .log()
                    .contains("authentication error - User \"someone-elses-game:dep-1\""),
                "{}",
                stack.server.log()
            );
        }
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_edgegap_proves_its_deployment_with_its_own_context_only() {
    // Edgegap names a deployment only once it is created, so no password can be handed to it;
    // its context API path and token are what only that deployment holds.
    let replica = bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: "callout-test-key".into(),
        apps: vec![AppSpec::new(APP, vec![VersionSpec::new("1")])],
        ready_after: Some(Duration::ZERO),
        ..ReplicaConfig::default()
    })
    .await
    .unwrap();
    let mut api = EdgegapApiConfig::new(Secret::new("callout-test-key"));
    api.base_url = replica.url();
    let client = EdgegapClient::new(&api).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let accepted = client
            .deploy(&DeployRequest {
                application: APP.into(),
                version: "1".into(),
                users: vec![DeploymentUser::ip("203.0.113.7")],
                environment_variables: Vec::new(),
                tags: Vec::new(),
                webhook_on_ready: None,
                webhook_on_error: None,
                webhook_on_terminated: None,
            })
            .await
            .unwrap();
        ids.push(accepted.request_id);
    }
    let views = replica.deployments();
    let proof = |id: &str| {
        let view = views.iter().find(|v| v.request_id == id).unwrap();
        let n = view.context_path.rsplit('/').next().unwrap();
        (n.to_owned(), view.context_token.clone())
    };
    let stack = start_with(Some(EdgegapContextCheck::new(
        &replica.url(),
        EDGEGAP_CONTEXT_TIMEOUT,
    )))
    .await;
    let login = |id: &str, n: &str, token: &str| {
        let deployment = deployment(id);
        let password = Secret::new(format!("edgegap-context:{n}:{token}"));
        let user = format!("{APP}:{id}");
        let stack = &stack;
        async move { stack.login(&user, &password, &deployment).await }
    };
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let ((n_a, token_a), (n_b, token_b)) = (proof(a), proof(b));

    let server_a = login(a, &n_a, &token_a).await.unwrap();
    let mut js = server_a.jetstream().clone();
    js.set_timeout(Duration::from_secs(1));
    let leases = open_bucket(&js, &stack.names.leases_bucket())
        .await
        .unwrap();
    leases.put(a, "{}".into()).await.unwrap();
    assert!(
        leases.put(b, "{}".into()).await.is_err(),
        "the other's lease"
    );

    let refused = |result: Result<NatsConnection, NatsError>| refused_now(&result);
    assert!(refused(login(a, &n_b, &token_b).await), "B's context as A");
    assert!(
        refused(login(a, &n_a, &token_b).await),
        "A's path with B's token"
    );
    assert!(refused(login(a, &n_a, "guess").await), "a guessed token");
    assert!(
        refused(login(a, "../x", &token_a).await),
        "a path that escapes"
    );

    // A deployment that has ended proves nothing any more.
    client.stop_deployment(b).await.unwrap();
    bevygap_test_support::wait_until_async(
        "B refused once stopped",
        Duration::from_secs(10),
        || {
            let login = login(b, &n_b, &token_b);
            async move { refused(login.await).then_some(()) }
        },
    )
    .await;
}
