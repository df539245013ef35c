//! What the end-to-end tests share: the demo configuration, waits with a deadline, and a session
//! request over the seed JSON endpoint.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it; a test fails loudly

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use bevy::prelude::*;
use bevygap_example_game::TICK;
use bevygap_example_game::demo::{DemoConfig, DemoEnv, DemoFleet};
use bevygap_example_game::{GAME, VERSION};
use bevygap_shared::protocol::seed_json::SeedResponse;
use futures::{SinkExt, StreamExt};
use lightyear::netcode::ConnectToken;
use lightyear::prelude::client::*;
use lightyear::prelude::*;

/// The longest any test waits for one condition.
pub const WAIT: Duration = Duration::from_secs(40);

/// Three bots on two-seat servers from `fleet`, staying a second; empty servers live two seconds.
pub fn demo_config(fleet: DemoFleet) -> DemoConfig {
    DemoConfig {
        server_binary: env!("CARGO_BIN_EXE_example_server").into(),
        bots: 3,
        seats_per_server: 2,
        play_for: Duration::from_secs(1),
        empty_server_ttl: Duration::from_secs(2),
        token_expire_secs: 15,
        transport: "udp".into(),
        fleet,
        nats_roles: false,
        nats_tls: false,
        queues: Default::default(),
        backfill_queue: None,
    }
}

/// Waits until `done`, failing the test after [`WAIT`].
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    bevygap_test_support::wait_until(what, WAIT, || done().then_some(()));
}

/// Asks the matchmaker for a session over the seed JSON endpoint: the token and server address,
/// or the error code and text it answered.
pub fn request_session(env: &DemoEnv) -> Result<(Vec<u8>, SocketAddr), (u16, String)> {
    env.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(env.seed_url())
            .await
            .unwrap();
        let request = format!(r#"{{"game":"{GAME}","version":"{VERSION}"}}"#);
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            request.into(),
        ))
        .await
        .unwrap();
        loop {
            let message = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("an answer in time")
                .expect("the connection stays open")
                .unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            match SeedResponse::parse(text) {
                Ok(SeedResponse::SessionReady {
                    token, ip, port, ..
                }) => {
                    let token = base64::engine::general_purpose::STANDARD
                        .decode(token)
                        .unwrap();
                    return Ok((token, format!("{ip}:{port}").parse().unwrap()));
                }
                Ok(SeedResponse::Error(code, text)) => return Err((code, text)),
                _ => {}
            }
        }
    })
}

/// A raw lightyear client (no Bevygap plugin) on its own UDP socket, so each one comes from
/// another address.
pub struct RawClient {
    app: App,
    entity: Entity,
    /// How it ended: `Ok` once connected, `Err` with the reason when refused or timed out.
    pub outcome: Option<Result<(), String>>,
}

impl RawClient {
    /// Starts connecting with `token`; a token that does not even parse is refused at once.
    pub fn start(token: &[u8]) -> Self {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_plugins(ClientPlugins {
                tick_duration: TICK,
            })
            .add_plugins(bevygap_example_web::protocol::ExampleProtocolPlugin);
        app.finish();
        app.cleanup();
        let netcode = ConnectToken::try_from_bytes(token)
            .map_err(|e| format!("{e:?}"))
            .and_then(|token| {
                NetcodeClient::new(
                    Authentication::Token(token),
                    lightyear::netcode::client_plugin::NetcodeConfig::default(),
                )
                .map_err(|e| e.to_string())
            });
        let (entity, outcome) = match netcode {
            Ok(netcode) => {
                let entity = app
                    .world_mut()
                    .spawn((
                        netcode,
                        LocalAddr(([0, 0, 0, 0], 0).into()),
                        UdpIo::default(),
                    ))
                    .id();
                app.world_mut().trigger(Connect { entity });
                (entity, None)
            }
            Err(reason) => (Entity::PLACEHOLDER, Some(Err(reason))),
        };
        Self {
            app,
            entity,
            outcome,
        }
    }

    /// The netcode client id it connected as.
    pub fn client_id(&self) -> Option<u64> {
        match self.app.world().get::<LocalId>(self.entity)?.0 {
            PeerId::Netcode(id) => Some(id),
            _ => None,
        }
    }

    /// One frame even after the outcome (keeps a connected client's link alive).
    pub fn keep_alive(&mut self) {
        self.app.update();
    }

    /// One frame; records the outcome once there is one.
    pub fn step(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        self.app.update();
        let world = self.app.world();
        if world.get::<Connected>(self.entity).is_some() {
            self.outcome = Some(Ok(()));
        } else if let Some(disconnected) = world.get::<Disconnected>(self.entity)
            && !matches!(disconnected.reason, DisconnectedReason::Unknown)
        {
            self.outcome = Some(Err(disconnected.reason.to_string()));
        }
    }

    /// Leaves, letting the server see it go.
    pub fn disconnect(mut self) {
        if matches!(self.outcome, Some(Ok(()))) {
            self.app.world_mut().trigger(Disconnect {
                entity: self.entity,
            });
            for _ in 0..5 {
                self.app.update();
                std::thread::sleep(TICK);
            }
        }
    }
}

/// Steps every client until each has an outcome; fails the test after [`WAIT`].
pub fn settle(clients: &mut [RawClient]) {
    let deadline = Instant::now() + WAIT;
    while clients.iter().any(|c| c.outcome.is_none()) {
        for client in clients.iter_mut() {
            client.step();
        }
        assert!(
            Instant::now() < deadline,
            "no connect or refusal within {WAIT:?}"
        );
        std::thread::sleep(TICK);
    }
}

/// Connects with `token`; Ok once connected (then leaves), Err with the reason when refused.
pub fn try_connect(token: &[u8]) -> Result<(), String> {
    let mut clients = [RawClient::start(token)];
    settle(&mut clients);
    let [client] = clients;
    let outcome = client.outcome.clone().unwrap_or(Err("no outcome".into()));
    client.disconnect();
    outcome
}

/// Connects with `token` like the client plugin does: a handshake the server denies because it
/// has not seen the reservation yet (its seat watch trails, e.g. across a NATS restart) is tried
/// again, up to `attempts` times; a denial does not use the token up.
pub fn connect_retrying_denials(token: &[u8], attempts: u32) -> Result<(), String> {
    let mut outcome = try_connect(token);
    for _ in 1..attempts {
        match &outcome {
            Err(reason) if reason.contains("ConnectionDenied") => outcome = try_connect(token),
            _ => break,
        }
    }
    outcome
}
