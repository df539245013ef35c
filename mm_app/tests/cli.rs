//! The matchmaker binary's command line: `--help` needs nothing, bad configuration is a clear
//! error at start-up, and an all-zero key is refused unless `--dev`.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::process::Command;

fn matchmaker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bevygap_matchmaker"));
    for var in [
        "LIGHTYEAR_PRIVATE_KEY",
        "APP_NAME",
        "APP_VERSION",
        "NATS_HOST",
        "BEVYGAP_DEV",
    ] {
        command.env_remove(var);
    }
    command
}

/// The flags every start-up test needs: a game, a protocol id, the static fleet.
fn with_required_flags() -> Command {
    let mut command = matchmaker();
    command.args([
        "--app-name",
        "g",
        "--app-version",
        "1",
        "--lightyear-protocol-id",
        "1",
        "--fleet",
        "static",
    ]);
    command
}

const ZERO_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn help_works_without_nats() {
    let out = matchmaker().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--app-name",
        "--app-version",
        "--lightyear-protocol-id",
        "--lightyear-private-key",
        "NATS_HOST",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn an_all_zero_key_is_refused_without_dev() {
    let out = with_required_flags()
        .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("all zeros") && err.contains("--dev"), "{err}");
}

#[test]
fn a_bad_key_is_refused_without_echoing_it() {
    let out = with_required_flags()
        .env("LIGHTYEAR_PRIVATE_KEY", "supersecretbutwrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("private key") && !err.contains("supersecretbutwrong"),
        "{err}"
    );
}

#[test]
fn an_unreachable_nats_is_a_clear_start_up_error() {
    let port = bevygap_test_support::free_tcp_port().unwrap();
    let out = with_required_flags()
        .args([
            "--dev",
            "--nats-insecure",
            "--nats-connect-timeout-ms",
            "500",
            "--remote-port",
            "0",
        ])
        .args([
            "--nats-host",
            &format!("127.0.0.1:{port}"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unreachable") && err.contains("NATS_HOST"),
        "{err}"
    );
}

#[test]
fn the_inspection_endpoint_stays_on_loopback_unless_allowed() {
    let out = with_required_flags()
        .args(["--dev", "--remote-address", "0.0.0.0"])
        .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--remote-allow-non-loopback"));
}
