//! Local mode: the real `example_server` run alone for development (`--local --dev`), with no
//! NATS, no matchmaker and no deployment context in its environment, and a client pointed at it
//! with `BevygapClientConfig::direct` minting its own token with the all-zero dev key.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use bevygap_client_plugin::connection::BevygapLightyearClient;
use bevygap_client_plugin::prelude::*;
use bevygap_example_game::{PROTOCOL_ID, TICK};
use bevygap_shared::schema::Transport;
use lightyear::prelude::client::ClientPlugins;
use lightyear::prelude::{LocalId, PeerId};

/// The longest any test waits for one condition.
const WAIT: Duration = Duration::from_secs(40);

/// Prefixes of the variables that could give the server a context, NATS or a key: cleared, so
/// local mode is shown to need none of them.
const CLEARED: &[&str] = &["BEVYGAP_", "NATS_", "LIGHTYEAR_", "ARBITRIUM_"];

/// `example_server` with `args` and none of the [`CLEARED`] variables; its output collected.
fn example_server(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_example_server"));
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if CLEARED.iter().any(|prefix| text.starts_with(prefix)) {
            command.env_remove(&name);
        }
    }
    command
        .args(args)
        // The gate says at debug level whom it refuses.
        .env("RUST_LOG", "info,bevygap_server_plugin=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A loopback address with a UDP port that was free a moment ago.
fn free_udp_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A running `example_server`, its output collected, killed on drop.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), log.clone());
        collect(child.stderr.take().unwrap(), log.clone());
        Self { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server's output holds `needle`; returns the output.
    fn wait_for_log(&self, what: &str, needle: &str) -> String {
        bevygap_test_support::wait_until(what, WAIT, || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `example_server --local --dev` on a free port with `extra` flags, and waits until it
/// says it listens; returns it and its address.
fn start_local(extra: &[&str]) -> (Running, SocketAddr) {
    let addr = free_udp_addr();
    let addr_arg = addr.to_string();
    let mut args = vec!["--local", "--dev", "--local-addr", &addr_arg];
    args.extend_from_slice(extra);
    let server = Running::spawn(example_server(&args));
    server.wait_for_log("the server to start", "local game server `local`");
    (server, addr)
}

/// Appends each line `from` writes to `log`, on its own thread.
fn collect(from: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// A headless client with the Bevygap plugin pointed straight at `server`.
struct DirectClient {
    app: App,
}

impl DirectClient {
    fn new(server: DirectServer, connect_timeout: Duration) -> Self {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_plugins(ClientPlugins {
                tick_duration: TICK,
            })
            .add_plugins(BevygapClientPlugin::new(BevygapClientConfig {
                // Nothing listens there: a direct client must never ask it.
                matchmaker_url: "ws://127.0.0.1:9/ws".into(),
                connect_timeout,
                direct: Some(server),
                ..BevygapClientConfig::default()
            }));
        app.finish();
        app.cleanup();
        Self { app }
    }

    fn udp(addr: SocketAddr) -> Self {
        Self::new(
            DirectServer {
                addr,
                transport: Transport::Udp,
                cert_digest: None,
                protocol_id: PROTOCOL_ID,
            },
            WAIT,
        )
    }

    fn connect(&mut self) {
        self.app.world_mut().commands().bevygap_connect_client();
        self.app.world_mut().flush();
    }

    fn disconnect(&mut self) {
        self.app.world_mut().commands().bevygap_disconnect_client();
        self.app.world_mut().flush();
    }

    fn state(&self) -> BevygapClientState {
        self.app.world().resource::<BevygapClientState>().clone()
    }

    /// One frame, paced by the game's tick.
    fn step(&mut self) {
        self.app.update();
        std::thread::sleep(TICK);
    }

    /// Steps until the state is no longer busy; returns it.
    fn settle(&mut self, what: &str) -> BevygapClientState {
        bevygap_test_support::wait_until(what, WAIT, || {
            self.step();
            let state = self.state();
            (!state.is_busy()).then_some(state)
        })
    }

    /// The netcode client id the plugin chose.
    fn client_id(&mut self) -> u64 {
        let world = self.app.world_mut();
        let mut ids = world.query_filtered::<&LocalId, With<BevygapLightyearClient>>();
        match ids.single(world).unwrap().0 {
            PeerId::Netcode(id) => id,
            other => panic!("not a netcode id: {other:?}"),
        }
    }
}

#[test]
fn a_client_connects_to_a_local_server_without_matchmaker_or_nats() {
    let (server, addr) = start_local(&[]);
    let mut client = DirectClient::udp(addr);
    client.connect();
    assert_eq!(client.state(), BevygapClientState::Connecting);
    let state = client.settle("the client to connect");
    assert_eq!(state, BevygapClientState::Connected, "{}", server.log());

    let id = client.client_id();
    let log = server.wait_for_log(
        "the server to count the player",
        &format!("bevygap: local client {id} connected (1 players)"),
    );
    assert!(
        log.contains("LOCAL MODE, for development only"),
        "the server warns that it is in local mode:\n{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_local_webtransport_server_logs_the_digest_a_client_connects_with() {
    let (server, addr) = start_local(&["--transport", "webtransport"]);
    let log = server.wait_for_log("the certificate digest", "certificate digest ");
    let digest: String = log
        .split("certificate digest ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(digest.len(), 64, "lowercase hex without colons:\n{log}");
    assert_eq!(digest, digest.to_ascii_lowercase());

    let mut client = DirectClient::new(
        DirectServer {
            addr,
            transport: Transport::WebTransport,
            cert_digest: Some(digest),
            protocol_id: PROTOCOL_ID,
        },
        WAIT,
    );
    client.connect();
    let state = client.settle("the client to connect over WebTransport");
    assert_eq!(state, BevygapClientState::Connected, "{}", server.log());
    let id = client.client_id();
    server.wait_for_log(
        "the server to count the player",
        &format!("bevygap: local client {id} connected (1 players)"),
    );
}

#[test]
fn a_local_server_denies_players_beyond_its_capacity_until_a_seat_frees() {
    let (server, addr) = start_local(&["--capacity", "1"]);
    let mut first = DirectClient::udp(addr);
    first.connect();
    assert_eq!(
        first.settle("the first client to connect"),
        BevygapClientState::Connected
    );

    // The refused client retries within its connect timeout, then gives up.
    let mut second = DirectClient::new(
        DirectServer {
            addr,
            transport: Transport::Udp,
            cert_digest: None,
            protocol_id: PROTOCOL_ID,
        },
        Duration::from_secs(3),
    );
    second.connect();
    let refused = bevygap_test_support::wait_until("the second client to be refused", WAIT, || {
        first.step();
        second.step();
        let state = second.state();
        (!state.is_busy()).then_some(state)
    });
    assert!(
        matches!(refused, BevygapClientState::Failed(_)),
        "{refused:?}"
    );
    server.wait_for_log("the gate to say why", "local server full (1 of 1 players)");
    assert_eq!(first.state(), BevygapClientState::Connected);

    // The first leaves; the server sees it go and takes the second.
    let first_id = first.client_id();
    first.disconnect();
    bevygap_test_support::wait_until("the server to see the first client leave", WAIT, || {
        first.step();
        server
            .log()
            .contains(&format!(
                "bevygap: local client {first_id} left (0 players)"
            ))
            .then_some(())
    });
    second.connect();
    assert_eq!(
        second.settle("the second client to connect once a seat is free"),
        BevygapClientState::Connected,
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(!log.contains("(2 players)"), "{log}");
}

#[test]
fn a_local_server_counts_its_players_in_its_status_and_never_registers() {
    use bevygap_example_game::server::server_app_without_log;
    use bevygap_example_game::{GAME, VERSION};
    use bevygap_server_plugin::local_mode::{self, DEV_KEY};
    use bevygap_server_plugin::{BevygapServerConfig, BevygapServerStatus, ServerMode};
    use bevygap_shared::nats::NatsSettings;

    let addr = free_udp_addr();
    let config = BevygapServerConfig {
        mode: ServerMode::Local,
        // Never dialled in local mode.
        nats: NatsSettings::insecure("127.0.0.1:1"),
        context: local_mode::context(addr, GAME.into(), VERSION.into(), 2).unwrap(),
        transport: Transport::Udp,
        protocol_id: PROTOCOL_ID,
        private_key: DEV_KEY,
        heartbeat: Duration::from_secs(2),
        unconnected_link_ttl: Duration::from_secs(30),
    };
    let mut server = server_app_without_log(config);
    server.finish();
    server.cleanup();
    let mut client = DirectClient::udp(addr);
    client.connect();
    let status = bevygap_test_support::wait_until("the server to count the player", WAIT, || {
        server.update();
        client.step();
        let status = server.world().resource::<BevygapServerStatus>();
        (status.players == 1).then(|| status.clone())
    });
    assert_eq!(client.state(), BevygapClientState::Connected);
    assert!(status.listening, "{status:?}");
    assert!(!status.registered && !status.nats_connected, "{status:?}");
}

#[test]
fn local_mode_without_dev_exits_with_what_to_do() {
    let addr = free_udp_addr().to_string();
    let mut server = Running::spawn(example_server(&["--local", "--local-addr", &addr]));
    let status = bevygap_test_support::wait_until("the server to exit", WAIT, || {
        server.child.try_wait().unwrap()
    });
    let log = server.wait_for_log("the refusal", "public all-zero");
    assert!(!status.success(), "{status:?}");
    assert!(
        log.contains("--local (BEVYGAP_LOCAL) needs --dev (BEVYGAP_DEV)"),
        "{log}"
    );
}
