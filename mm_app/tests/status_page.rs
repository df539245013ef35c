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

/// The number a rendered page shows in `<b id="{id}">…</b>`.
fn shown(dom: &str, id: &str) -> Option<u64> {
    let start = dom.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    dom[start..].split('<').next()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_the_page_shows_what_the_inspection_summary_says() {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        println!("skipped: chromium not found (ci/setup.sh installs Debian's chromium)");
        return;
    };
    let h = AppHarness::start().await;
    h.put_lease(&lease_in("dep-eu", 4, "Frankfurt")).await;
    h.put_lease(&lease_in("dep-us", 8, "Virginia")).await;
    h.open_connection("dep-eu", 0, 9).await;
    h.open_connection("dep-us", 0, 10).await;
    h.open_connection("dep-us", 1, 11).await;
    let summary = wait_until_async("both servers, three players", WAIT, || async {
        let reply = rpc(h.inspect_port, "bevygap/summary", serde_json::json!(null)).await;
        let deployments = reply["result"]["deployments"].as_array()?.clone();
        let connected: u64 = deployments
            .iter()
            .filter_map(|d| d["connected"].as_u64())
            .sum();
        (deployments.len() == 2 && connected == 3).then_some(reply["result"].clone())
    })
    .await;
    let deployments = summary["deployments"].as_array().unwrap();
    let free: u64 = deployments.iter().filter_map(|d| d["free"].as_u64()).sum();

    let url = format!("http://{}/status", h.mm().client_addr);
    let screenshot =
        std::env::temp_dir().join(format!("bevygap-status-{}.png", std::process::id()));
    let browse = |args: Vec<String>| {
        let chromium = chromium.to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                ])
                .args(["--virtual-time-budget=5000", "--window-size=1000,640"])
                .args(args)
                .output()
                .unwrap()
        })
    };
    let dom = browse(vec!["--dump-dom".into(), url.clone()])
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert_eq!(shown(&dom, "servers"), Some(2), "{dom}");
    assert_eq!(shown(&dom, "players"), Some(3), "{dom}");
    assert_eq!(shown(&dom, "free"), Some(free), "{dom}");
    assert_eq!(shown(&dom, "waiting"), Some(0), "{dom}");
    assert!(dom.contains("dep-eu") && dom.contains("Virginia"), "{dom}");
    assert!(
        !dom.contains("127.0.0.1"),
        "no server address on the public page"
    );

    let shot = browse(vec![format!("--screenshot={}", screenshot.display()), url])
        .await
        .unwrap();
    assert!(shot.status.success(), "{shot:?}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    // The README shows this page; `BEVYGAP_SCREENSHOT_TO` keeps a copy where it is wanted.
    if let Some(to) = std::env::var_os("BEVYGAP_SCREENSHOT_TO") {
        std::fs::copy(&screenshot, to).unwrap();
    }
    let _ = std::fs::remove_file(&screenshot);
}
