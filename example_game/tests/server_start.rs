//! A game server that cannot start says why and exits with an error, instead of panicking.

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
