//! A game server's own defences: a port it cannot bind is a clear error exit rather than a panic,
//! peers that never finish the handshake do not pile up as links, and NATS down at start does not
//! stop it serving.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::process::{Command, Stdio};
use std::time::Duration;

use bevygap_example_game::{GAME, VERSION};
use bevygap_shared::context_env;

#[test]
fn a_server_whose_port_is_taken_exits_with_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_example_server"))
        .env(context_env::DEPLOYMENT_ID, "local-taken")
        .env(context_env::PUBLIC_IP, "127.0.0.1")
        .env(context_env::PORT, port.to_string())
        .env(context_env::APP_NAME, GAME)
        .env(context_env::APP_VERSION, VERSION)
        .env("LIGHTYEAR_PRIVATE_KEY", "7".repeat(64))
        .env("NATS_HOST", "127.0.0.1:1")
        .env("NATS_INSECURE", "true")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status =
        bevygap_test_support::wait_until("the server to exit", Duration::from_secs(30), || {
            child.try_wait().unwrap()
        });
    let output = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!status.success());
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
    drop(taken);
}

#[test]
fn links_of_peers_that_never_connect_are_dropped() {
    use bevy::prelude::*;
    use bevygap_server_plugin::BevygapServerConfig;
    use bevygap_server_plugin::context::DeploymentContext;
    use bevygap_shared::nats::NatsSettings;
    use bevygap_shared::schema::Transport;
    use lightyear::prelude::{LinkOf, Linked, Server};

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lookup = |name: &str| match name {
        context_env::DEPLOYMENT_ID => Some("local-sweep".to_owned()),
        context_env::PUBLIC_IP => Some("127.0.0.1".to_owned()),
        context_env::PORT => Some(port.to_string()),
        context_env::APP_NAME => Some(GAME.to_owned()),
        context_env::APP_VERSION => Some(VERSION.to_owned()),
        _ => None,
    };
    let config = BevygapServerConfig {
        mode: bevygap_server_plugin::ServerMode::Fleet,
        // Nobody listens there: NATS retries in the background, the netcode server still runs.
        nats: NatsSettings::insecure("127.0.0.1:1"),
        context: DeploymentContext::from_local_env(lookup, 4).unwrap(),
        transport: Transport::Udp,
        protocol_id: bevygap_example_game::PROTOCOL_ID,
        private_key: [9; 32],
        heartbeat: Duration::from_secs(2),
        unconnected_link_ttl: Duration::from_secs(1),
    };
    let mut app = bevygap_example_game::server::server_app_without_log(config);
    app.finish();
    app.cleanup();
    let update_until = |what: &str, app: &mut App, done: &dyn Fn(&mut World) -> bool| {
        bevygap_test_support::wait_until(what, Duration::from_secs(20), || {
            app.update();
            std::thread::sleep(Duration::from_millis(5));
            done(app.world_mut()).then_some(())
        });
    };
    update_until("the server listening", &mut app, &|world| {
        world
            .query_filtered::<(), (With<Server>, With<Linked>)>()
            .iter(world)
            .count()
            == 1
    });

    // Three addresses send garbage and never connect.
    let scanners: Vec<std::net::UdpSocket> = (0..3)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for scanner in &scanners {
        scanner
            .send_to(b"not a netcode packet", ("127.0.0.1", port))
            .unwrap();
    }
    let links = |world: &mut World| world.query::<&LinkOf>().iter(world).count();
    update_until("a link per scanner", &mut app, &|world| links(world) == 3);
    update_until("the unconnected links dropped", &mut app, &|world| {
        links(world) == 0
    });
}

#[test]
fn with_nats_down_at_start_the_server_serves_says_so_and_registers_when_nats_returns() {
    use bevygap_example_game::PROTOCOL_ID;
    use bevygap_example_game::server::server_app_without_log;
    use bevygap_matchmaker::kv_bridge::KvStores;
    use bevygap_server_plugin::context::DeploymentContext;
    use bevygap_server_plugin::{BevygapServerConfig, BevygapServerStatus};
    use bevygap_shared::names::{AppNames, KeyToken};
    use bevygap_shared::nats::{NatsSettings, connect};
    use bevygap_shared::schema::Transport;
    use bevygap_test_support::NatsServer;

    // The matchmaker made the buckets once; then NATS went away.
    let mut nats = NatsServer::start().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&NatsSettings::insecure(nats.address()), "test")
            .await
            .unwrap();
        KvStores::open(&client, &AppNames::new(GAME).unwrap(), 1)
            .await
            .unwrap();
    });
    nats.stop();

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut app = server_app_without_log(BevygapServerConfig {
        mode: bevygap_server_plugin::ServerMode::Fleet,
        nats: NatsSettings::insecure(nats.address()),
        context: DeploymentContext {
            deployment_id: KeyToken::new("deployment id", "local-nats-down").unwrap(),
            app_name: GAME.into(),
            app_version: VERSION.into(),
            public_addr: port,
            bind_addr: port,
            capacity: 2,
            fqdn: None,
            location: None,
            parent_pid: None,
        },
        transport: Transport::Udp,
        protocol_id: PROTOCOL_ID,
        private_key: [7; 32],
        heartbeat: Duration::from_secs(1),
        unconnected_link_ttl: Duration::from_secs(30),
    });
    app.finish();
    app.cleanup();
    let mut status_when = |what: &str, done: &dyn Fn(&BevygapServerStatus) -> bool| {
        bevygap_test_support::wait_until(what, Duration::from_secs(40), || {
            app.update();
            std::thread::sleep(bevygap_example_game::TICK);
            let status = app.world().resource::<BevygapServerStatus>();
            done(status).then(|| status.clone())
        })
    };
    let status = status_when("the server to listen without NATS", &|s| s.listening);
    assert!(!status.registered && !status.nats_connected, "{status:?}");

    nats.restart().unwrap();
    let status = status_when("the server to register once NATS is back", &|s| {
        s.registered && s.nats_connected
    });
    assert!(status.listening, "{status:?}");
}
