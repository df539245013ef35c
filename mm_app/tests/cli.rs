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
    with_fleet("static")
}

/// Runs `command`, expecting the start-up refusal (exit code 2); returns what it printed.
fn refused(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A game, a protocol id and `fleet`.
fn with_fleet(fleet: &str) -> Command {
    let mut command = matchmaker();
    command.args([
        "--app-name",
        "g",
        "--app-version",
        "1",
        "--lightyear-protocol-id",
        "1",
        "--fleet",
        fleet,
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
    let err = refused(with_required_flags().env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY));
    assert!(err.contains("all zeros") && err.contains("--dev"), "{err}");
}

#[test]
fn a_bad_key_is_refused_without_echoing_it() {
    let err = refused(with_required_flags().env("LIGHTYEAR_PRIVATE_KEY", "supersecretbutwrong"));
    assert!(
        err.contains("private key") && !err.contains("supersecretbutwrong"),
        "{err}"
    );
}

#[test]
fn an_unreachable_nats_is_a_clear_start_up_error() {
    let port = bevygap_test_support::free_tcp_port().unwrap();
    let err = refused(
        with_required_flags()
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
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(
        err.contains("unreachable") && err.contains("NATS_HOST"),
        "{err}"
    );
}

#[test]
fn the_inspection_endpoint_stays_on_loopback_without_a_token() {
    let err = refused(
        with_required_flags()
            .args(["--dev", "--remote-address", "0.0.0.0"])
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
            .env_remove("BEVYGAP_REMOTE_TOKEN"),
    );
    assert!(err.contains("BEVYGAP_REMOTE_TOKEN"));
}

#[test]
fn kv_replicas_outside_what_jetstream_allows_are_refused() {
    for replicas in ["0", "6"] {
        let err = refused(
            with_required_flags()
                .args(["--dev", "--kv-replicas", replicas])
                .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
        );
        assert!(
            err.contains("kv-replicas") && err.contains("1 to 5"),
            "{err}"
        );
    }
}

#[test]
fn game_servers_on_edgegap_do_not_inherit_the_matchmakers_nats_identity_silently() {
    let err = refused(
        with_fleet("edgegap")
            .arg("--dev")
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
            .env("EDGEGAP_API_KEY", "token k")
            .env_remove("BEVYGAP_GAMESERVER_NATS_USER")
            .env_remove("BEVYGAP_GAMESERVER_INHERIT_NATS"),
    );
    assert!(
        err.contains("--gameserver-nats-user") && err.contains("--gameserver-inherit-nats"),
        "{err}"
    );
}

#[test]
fn the_edgegap_fleet_needs_its_api_key() {
    let out = with_fleet("edgegap")
        .args(["--dev", "--gameserver-inherit-nats"])
        .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
        .env_remove("EDGEGAP_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("EDGEGAP_API_KEY"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_edgegap_app_stops_the_start_with_what_to_fix() {
    use bevygap_edgegap_replica::{AppSpec, ReplicaConfig, VersionSpec};
    let nats = bevygap_test_support::NatsServer::start().unwrap();
    let replica = bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: "cli-test-key".into(),
        apps: vec![AppSpec::new("other-game", vec![VersionSpec::new("1")])],
        ..ReplicaConfig::default()
    })
    .await
    .unwrap();
    let mut command = with_fleet("edgegap");
    command
        .args(["--dev", "--remote-port", "0", "--gameserver-inherit-nats"])
        .args(["--edgegap-url", &replica.url()])
        .args(["--listen", "127.0.0.1:0"])
        .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY)
        .env("EDGEGAP_API_KEY", "token cli-test-key")
        .env("NATS_HOST", nats.address())
        .env("NATS_INSECURE", "true");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("has no application `g`"), "{text}");
    assert!(text.contains("--app-name"), "{text}");
    assert!(!text.contains("cli-test-key"), "the key is never printed");
}

#[test]
fn the_env_templates_name_only_real_settings() {
    let out = matchmaker().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for text in [
        include_str!("../../assets/matchmaker.env.example"),
        include_str!("../../assets/edgegap.env.example"),
    ] {
        let names = bevygap_test_support::env_template_names(text);
        assert!(names.len() >= 5);
        for name in names {
            assert!(
                bevygap_test_support::help_names_env(&help, name),
                "{name} is not a setting"
            );
        }
    }
}

#[test]
fn a_secret_given_as_a_flag_is_warned_about_and_never_echoed() {
    let key = "0707070707070707070707070707070707070707070707070707070707070707";
    let err = refused(
        with_required_flags()
            .args(["--lightyear-private-key", key])
            .args(["--remote-token", "t0ken-on-the-command-line"])
            .args(["--remote-address", "0.0.0.0", "--kv-replicas", "0"])
            .env_remove("LIGHTYEAR_PRIVATE_KEY")
            .env_remove("BEVYGAP_REMOTE_TOKEN"),
    );
    assert!(
        err.contains("--lightyear-private-key was given on the command line")
            && err.contains("LIGHTYEAR_PRIVATE_KEY or --lightyear-private-key-file")
            && err.contains("--remote-token was given on the command line"),
        "{err}"
    );
    assert!(
        !err.contains(key) && !err.contains("t0ken-on-the-command-line"),
        "{err}"
    );
}

#[test]
fn tls_for_the_client_listener_needs_both_files_and_they_must_exist() {
    let err = refused(
        with_required_flags()
            .args(["--dev", "--tls-cert", "/nonexistent/cert.pem"])
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(err.contains("--tls-key"));

    let err = refused(
        with_required_flags()
            .args(["--dev", "--tls-cert", "/nonexistent/cert.pem"])
            .args(["--tls-key", "/nonexistent/key.pem"])
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(
        err.contains("--tls-cert") && err.contains("not a readable file"),
        "{err}"
    );
}

#[test]
fn boolean_variables_take_1_0_yes_no_as_well_as_true_false() {
    let port = bevygap_test_support::free_tcp_port().unwrap();
    for (insecure, dev) in [("1", "yes"), ("true", "on"), ("yes", "1")] {
        let err = refused(
            with_required_flags()
                .args(["--nats-connect-timeout-ms", "300", "--remote-port", "0"])
                .args(["--nats-host", &format!("127.0.0.1:{port}")])
                .env("NATS_INSECURE", insecure)
                .env("BEVYGAP_DEV", dev)
                .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
        );
        // Parsed (the all-zero key is accepted in dev mode); only NATS is missing.
        assert!(err.contains("unreachable"), "{insecure}/{dev}: {err}");
    }
    let err = refused(
        with_required_flags()
            .env("NATS_INSECURE", "maybe")
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(err.contains("nats-insecure"));
}

#[test]
fn a_callout_key_that_is_not_an_account_seed_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("user.seed");
    // A user seed (S U …), not an account's.
    let user_seed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4";
    std::fs::write(&seed, user_seed).unwrap();
    let err = refused(
        with_required_flags()
            .args(["--dev", "--gameserver-auth-key-file"])
            .arg(&seed)
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(err.contains("gameserver-auth-key-file"), "{err}");
    assert!(
        err.contains("account seed") || err.contains("nkey seed"),
        "{err}"
    );
    assert!(!err.contains(user_seed), "{err}");
}

#[test]
fn a_queues_file_with_a_mistake_stops_the_start_with_the_queue_and_setting_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("queues.toml");
    std::fs::write(
        &bad,
        "[[queue]]\nname = \"ranked\"\nteam_size = { min = 3, max = 2 }\nmax_wait_secs = 60\n",
    )
    .unwrap();
    let err = refused(
        with_required_flags()
            .arg("--dev")
            .arg("--queues")
            .arg(&bad)
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(
        err.contains("--queues") && err.contains("\"ranked\"") && err.contains("team_size"),
        "{err}"
    );
    let missing = refused(
        with_required_flags()
            .args(["--dev", "--queues", "/nonexistent/queues.toml"])
            .env("LIGHTYEAR_PRIVATE_KEY", ZERO_KEY),
    );
    assert!(missing.contains("cannot read the queues file"), "{missing}");
}
