//! Connecting to a real nats-server: user/password, TLS with a custom CA (file or PEM text), and the
//! clear errors for a wrong password, a wrong CA and an unreachable host.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::path::Path;

use bevygap_shared::NatsError;
use bevygap_shared::nats::{NatsSettings, connect, install_crypto_provider};
use bevygap_shared::secret::Secret;
use bevygap_test_support::{NatsServer, NatsServerOptions, TestPki, free_tcp_port};

fn make_pki(dir: &Path, name: &str) -> TestPki {
    bevygap_test_support::make_pki(dir, name).unwrap()
}

fn tls_settings(server: &NatsServer) -> NatsSettings {
    let mut settings = NatsSettings::insecure(server.address());
    settings.insecure = false;
    settings
}

#[tokio::test]
async fn user_and_password_connects_and_wrong_password_is_refused_clearly() {
    let server = NatsServer::start_with(NatsServerOptions {
        user_password: Some(("matchmaker".into(), "s3cret".into())),
        ..Default::default()
    })
    .expect("start nats-server");

    let mut settings = NatsSettings::insecure(server.address());
    settings.user = Some("matchmaker".into());
    settings.password = Some(Secret::new("s3cret"));
    let nats = connect(&settings, "test").await.expect("connect");
    assert!(nats.state().is_connected());
    nats.client().flush().await.expect("flush");

    settings.password = Some(Secret::new("wrong"));
    let err = connect(&settings, "test")
        .await
        .expect_err("wrong password accepted");
    assert!(
        matches!(err, NatsError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("NATS_PASSWORD"), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password leaked into the error: {text}"
    );
}

#[tokio::test]
async fn tls_with_ca_file_and_ca_contents_connects() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "good");
    let server = NatsServer::start_with(NatsServerOptions {
        tls: Some(pki.server.clone()),
        ..Default::default()
    })
    .expect("start nats-server");

    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let mut by_file = tls_settings(&server);
    by_file.ca = Some(ca_file);
    let nats = connect(&by_file, "test")
        .await
        .expect("connect with NATS_CA");
    nats.client().flush().await.unwrap();

    let mut by_contents = tls_settings(&server);
    by_contents.ca_contents = Some(Secret::new(pki.ca_pem.clone()));
    let nats = connect(&by_contents, "test")
        .await
        .expect("connect with NATS_CA_CONTENTS");
    nats.client().flush().await.unwrap();
}

#[tokio::test]
async fn tls_with_the_wrong_ca_is_refused_clearly() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    let server = NatsServer::start_with(NatsServerOptions {
        tls: Some(pki.server),
        ..Default::default()
    })
    .expect("start nats-server");

    let mut settings = tls_settings(&server);
    settings.ca_contents = Some(Secret::new(other.ca_pem));
    let err = connect(&settings, "test")
        .await
        .expect_err("wrong CA accepted");
    assert!(matches!(err, NatsError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("NATS_CA"), "{err}");
}

#[tokio::test]
async fn a_ca_that_is_not_pem_is_refused_before_connecting() {
    let mut settings = NatsSettings::insecure("127.0.0.1:1");
    settings.insecure = false;
    settings.ca_contents = Some(Secret::new("this is not a certificate"));
    let err = connect(&settings, "test")
        .await
        .expect_err("garbage CA accepted");
    assert!(matches!(err, NatsError::InvalidCa { .. }), "{err:?}");

    let mut settings = NatsSettings::insecure("127.0.0.1:1");
    settings.insecure = false;
    settings.ca = Some("/nonexistent/ca.pem".into());
    let err = connect(&settings, "test")
        .await
        .expect_err("missing CA file accepted");
    assert!(matches!(err, NatsError::InvalidCa { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_host_is_a_clear_error() {
    let port = free_tcp_port().unwrap();
    let mut settings = NatsSettings::insecure(format!("127.0.0.1:{port}"));
    settings.connect_timeout_ms = 500;
    let err = connect(&settings, "test")
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, NatsError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("NATS_HOST"), "{err}");
}
