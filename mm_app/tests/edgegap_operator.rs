//! The `bevygap_edgegap` operator command against the offline Edgegap replica.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::process::{Command, Output};

use bevygap_edgegap_replica::{AppSpec, ReplicaConfig, ReplicaHandle, VersionSpec};
use bevygap_matchmaker::fleet::edgegap::client::{EdgegapApiConfig, EdgegapClient};
use bevygap_shared::secret::Secret;

const KEY: &str = "operator-test-key";
const PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIU\nQUJD\n-----END CERTIFICATE-----\n";

async fn replica() -> ReplicaHandle {
    let mut version = VersionSpec::new("1");
    version.arguments = Some("--capacity 4".into());
    bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: KEY.into(),
        apps: vec![AppSpec::new("spaceships", vec![version])],
        ready_after: Some(std::time::Duration::ZERO),
        ..ReplicaConfig::default()
    })
    .await
    .unwrap()
}

async fn run(replica: &ReplicaHandle, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bevygap_edgegap"));
    command
        .env_remove("EDGEGAP_API_KEY_FILE")
        .env("EDGEGAP_API_KEY", KEY)
        .args(["--edgegap-url", &replica.url()])
        .args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn client(replica: &ReplicaHandle) -> EdgegapClient {
    let mut config = EdgegapApiConfig::new(Secret::new(KEY));
    config.base_url = replica.url();
    EdgegapClient::new(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_version_or_what_is_wrong() {
    let replica = replica().await;
    let ok = run(
        &replica,
        &["check", "--app", "spaceships", "--version", "1"],
    )
    .await;
    assert!(ok.status.success());
    assert!(stdout(&ok).contains("ok: spaceships 1"), "{}", stdout(&ok));

    let wrong = run(
        &replica,
        &["check", "--app", "spaceships", "--version", "7"],
    )
    .await;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("has no version `7`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ca_argument_keeps_other_arguments_and_replaces_an_older_ca() {
    let replica = replica().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("rootCA.pem");
    std::fs::write(&ca, PEM).unwrap();
    let ca = ca.display().to_string();
    let args = [
        "set-ca-argument",
        "--app",
        "spaceships",
        "--version",
        "1",
        "--ca-file",
        &ca,
    ];
    for _ in 0..2 {
        let out = run(&replica, &args).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let version = client(&replica)
        .app_version("spaceships", "1")
        .await
        .unwrap();
    assert_eq!(
        version.arguments.as_deref(),
        Some(
            "--capacity 4 --ca_contents '-----BEGIN CERTIFICATE-----MIIBdzCCAR2gAwIBAgIUQUJD-----END CERTIFICATE-----'"
        )
    );

    let out = run(
        &replica,
        &[
            "set-arguments",
            "--app",
            "spaceships",
            "--version",
            "1",
            "--arguments",
            "--capacity 2",
        ],
    )
    .await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("--capacity 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_listed_and_stopped() {
    let replica = replica().await;
    let client = client(&replica);
    let request = bevygap_matchmaker::fleet::edgegap::api::DeployRequest {
        application: "spaceships".into(),
        version: "1".into(),
        users: vec![bevygap_matchmaker::fleet::edgegap::api::DeploymentUser::ip(
            "203.0.113.7",
        )],
        environment_variables: Vec::new(),
        tags: vec!["bevygap".into()],
        webhook_on_ready: None,
        webhook_on_error: None,
        webhook_on_terminated: None,
    };
    let id = client.deploy(&request).await.unwrap().request_id;

    let listed = run(&replica, &["deployments"]).await;
    assert!(listed.status.success());
    assert!(
        stdout(&listed).contains(&format!("{id}  ready")),
        "{}",
        stdout(&listed)
    );

    let stopped = run(&replica, &["stop", &id, &id]).await;
    assert!(stopped.status.success());
    assert_eq!(
        stdout(&stopped),
        format!("ok: {id} is stopping\nok: {id} was already gone\n")
    );
    assert!(replica.deployments()[0].stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_a_usage_error_that_names_the_variable() {
    let replica = replica().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_bevygap_edgegap"));
    command
        .env_remove("EDGEGAP_API_KEY")
        .env_remove("EDGEGAP_API_KEY_FILE")
        .args(["--edgegap-url", &replica.url(), "deployments"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EDGEGAP_API_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_version_makes_a_version_of_a_tagged_image_that_check_then_accepts() {
    let replica = replica().await;
    let image = "registry.edgegap.com/my-project/spaceships:1.2.3";
    let created = run(
        &replica,
        &[
            "create-version",
            "--app",
            "spaceships",
            "--version",
            "1.2.3",
            "--image",
            image,
        ],
    )
    .await;
    assert!(created.status.success(), "{created:?}");
    assert!(
        stdout(&created).contains("created: spaceships 1.2.3 running my-project/spaceships:1.2.3"),
        "{}",
        stdout(&created)
    );
    let checked = run(
        &replica,
        &["check", "--app", "spaceships", "--version", "1.2.3"],
    )
    .await;
    assert!(checked.status.success(), "{checked:?}");
    assert!(
        stdout(&checked).contains("gameport 6420/UDP"),
        "{}",
        stdout(&checked)
    );

    // The same name again, an untagged image, or `latest`: refused with what to fix.
    let again = run(
        &replica,
        &[
            "create-version",
            "--app",
            "spaceships",
            "--version",
            "1.2.3",
            "--image",
            image,
        ],
    )
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    for bad in [
        "registry.edgegap.com/my-project/spaceships",
        "registry.edgegap.com/my-project/spaceships:latest",
        "spaceships:1.2.3",
    ] {
        let refused = run(
            &replica,
            &[
                "create-version",
                "--app",
                "spaceships",
                "--version",
                "9",
                "--image",
                bad,
            ],
        )
        .await;
        assert!(!refused.status.success(), "{bad}");
        assert!(
            !String::from_utf8_lossy(&refused.stderr).is_empty(),
            "{bad}"
        );
    }
}
