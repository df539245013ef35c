//! The client listener over TLS: with a certificate and key configured, `wss://` serves the seed
//! JSON endpoint to a real rustls client that trusts the CA, and plain `ws://` gets nothing.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::sync::Arc;

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::ListenerTls;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_shared::protocol::seed_json::SeedResponse;
use bevygap_test_support::make_pki;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::app_harness::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_listener_speaks_wss_to_a_client_that_trusts_its_ca() {
    bevygap_shared::nats::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "listener").unwrap();
    let files = pki.server.clone();
    let h = AppHarness::start_adjusted(Limits::default(), FleetChoice::Static, move |config| {
        config.intake.tls = Some(ListenerTls {
            cert: files.cert,
            key: files.key,
        });
    })
    .await;
    let addr = h.mm().client_addr;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the configured certificate");
    let url = format!("wss://localhost:{}/matchmaker/ws", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("a websocket over TLS");
    ws.send(Message::Text(r#"{"game":"tetris","version":"1"}"#.into()))
        .await
        .unwrap();
    let mut answers = Vec::new();
    while let Some(Ok(message)) = ws.next().await {
        if let Ok(text) = message.to_text()
            && let Ok(answer) = SeedResponse::parse(text)
        {
            answers.push(answer);
        }
    }
    assert!(
        answers
            .iter()
            .any(|a| matches!(a, SeedResponse::Error(404, _))),
        "{answers:?}"
    );

    // Plain websockets to a TLS listener get no session.
    let plain = tokio_tungstenite::connect_async(format!("ws://{addr}/matchmaker/ws")).await;
    assert!(plain.is_err(), "plain ws:// must not be served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_a_certificate_and_key_stop_the_start_with_what_to_fix() {
    let nats = bevygap_test_support::NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let mut config = app_config(&nats, Limits::default(), 0, FleetChoice::Static);
    config.inspect = None;
    config.intake.tls = Some(ListenerTls { cert, key });
    let started = tokio::task::spawn_blocking(move || bevygap_matchmaker::spawn_matchmaker(config))
        .await
        .unwrap();
    let error = started.err().expect("the start is refused").to_string();
    assert!(
        error.contains("tls-cert") && error.contains("not a usable certificate and key"),
        "{error}"
    );
}
