//! What the end-to-end tests share: the demo configuration, waits with a deadline, and a session
//! request over the seed JSON endpoint.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it; a test fails loudly

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use bevygap_example_game::demo::{DemoConfig, DemoEnv, DemoFleet};
use bevygap_example_game::{GAME, VERSION};
use bevygap_shared::protocol::seed_json::SeedResponse;
use futures::{SinkExt, StreamExt};

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
