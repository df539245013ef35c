//! The public status page on the client listener: the page itself, and live counts without the
//! game servers' addresses.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use bevygap_test_support::wait_until_async;
use serde_json::Value;
use support::app_harness::*;
use support::core_harness::lease_in;

async fn get(url: String) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_servers_and_seats_without_addresses() {
    let h = AppHarness::start().await;
    let base = format!("http://{}", h.mm().client_addr);

    let page = get(format!("{base}/status")).await;
    assert!(page.status().is_success());
    assert!(
        page.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>Bevygap status</title>")
    );

    h.put_lease(&lease_in("dep-eu", 4, "Frankfurt")).await;
    h.open_connection("dep-eu", 0, 9).await;
    let status: Value = wait_until_async("the server with one player", WAIT, || async {
        let status: Value = get(format!("{base}/status.json")).await.json().await.ok()?;
        let deployment = status["deployments"].as_array()?.first()?.clone();
        (deployment["connected"] == 1).then_some(status)
    })
    .await;
    let deployment = &status["deployments"][0];
    assert_eq!(deployment["id"], "dep-eu");
    assert_eq!(deployment["region"], "Frankfurt");
    assert_eq!(deployment["free"], 3);
    assert!(deployment.get("address").is_none(), "{deployment}");
    assert_eq!(status["tickets"]["queued"], 0);
    assert!(!status.to_string().contains("127.0.0.1"), "{status}");
}
