//! `/healthz` and `/readyz` on the client listener: ready once NATS is connected and the ledger
//! listed, not ready (503, saying why) while NATS is down, ready again after it returns; alive
//! throughout.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use bevygap_test_support::wait_until_async;
use serde_json::Value;
use support::app_harness::*;

async fn probe(url: &str) -> Option<(u16, Value)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_nats_and_the_ledger_while_the_loop_stays_alive() {
    let mut h = AppHarness::start().await;
    let base = format!("http://{}", h.mm().client_addr);
    let (ready, healthz) = (format!("{base}/readyz"), format!("{base}/healthz"));

    let body = wait_until_async("ready", WAIT, || async {
        let (status, body) = probe(&ready).await?;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body["nats_connected"], true);
    assert_eq!(body["ledger_listed"], true);
    assert_eq!(probe(&healthz).await.unwrap().0, 200);

    h.nats_server.stop();
    let body = wait_until_async("not ready without NATS", WAIT, || async {
        let (status, body) = probe(&ready).await?;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["ready"], false);
    assert_eq!(body["nats_connected"], false, "{body}");
    let (status, alive) = probe(&healthz).await.unwrap();
    assert_eq!(status, 200, "the process is alive: {alive}");

    h.nats_server.restart().unwrap();
    wait_until_async("ready again after NATS returns", WAIT, || async {
        let (status, _) = probe(&ready).await?;
        (status == 200).then_some(())
    })
    .await;
}
