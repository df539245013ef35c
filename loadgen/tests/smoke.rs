//! A smoke run of the load generator against a local matchmaker: a few dozen requests over each
//! protocol, all answered with a session.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::time::Duration;

use bevygap_loadgen::env::{GAME, VERSION, WarmFleet};
use bevygap_loadgen::{LoadConfig, Protocol, run_load};

fn load(url: String, protocol: Protocol, requests: usize) -> LoadConfig {
    LoadConfig {
        url,
        protocol,
        game: GAME.into(),
        version: VERSION.into(),
        clients: 4,
        rate: None,
        ramp_up: Duration::ZERO,
        max_requests: requests,
        max_duration: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        allow_remote: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_dozen_requests_over_both_protocols_all_get_sessions() {
    let fleet = WarmFleet::start(2, 1000).await.unwrap();
    let report = run_load(load(fleet.seed_url(), Protocol::Seed, 40))
        .await
        .unwrap();
    assert_eq!(
        (report.requests, report.ready),
        (40, 40),
        "{}",
        report.table()
    );
    assert!(report.errors.is_empty());
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.max >= report.latency_ms.p99);

    let report = run_load(load(fleet.simplenet_url(), Protocol::Simplenet, 24))
        .await
        .unwrap();
    assert_eq!(
        (report.requests, report.ready),
        (24, 24),
        "{}",
        report.table()
    );
}

#[tokio::test]
async fn a_paced_run_respects_its_request_cap_and_remote_targets_are_refused() {
    let mut config = load("ws://127.0.0.1:9/matchmaker/ws".into(), Protocol::Seed, 10);
    config.rate = Some(200.0);
    let report = run_load(config.clone()).await.unwrap();
    assert_eq!(report.requests, 10);
    assert_eq!(report.errors.get("connect"), Some(&10));

    config.url = "ws://203.0.113.1:3000/matchmaker/ws".into();
    assert!(run_load(config).await.is_err());
}
