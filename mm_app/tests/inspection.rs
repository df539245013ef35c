//! Live inspection over bevy_remote: `world.query` sees deployments, `bevygap/summary` counts.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevygap_test_support::wait_until_async;
use serde_json::json;
use support::app_harness::*;
use support::core_harness::lease;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_world_query_show_deployments_and_seats() {
    let h = AppHarness::start().await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    h.open_connection("dep-a", 0, 11).await;
    let summary = wait_until_async(
        "the summary to show dep-a with one player",
        WAIT,
        || async {
            let reply = rpc(h.inspect_port, "bevygap/summary", json!(null)).await;
            let deployments = reply["result"]["deployments"].as_array()?.clone();
            let dep = deployments.iter().find(|d| d["id"] == "dep-a")?.clone();
            (dep["connected"] == 1).then_some(reply)
        },
    )
    .await;
    let dep = &summary["result"]["deployments"][0];
    assert_eq!(
        (dep["capacity"].as_u64(), dep["free"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(summary["result"]["tickets"]["queued"], 0);

    let query = rpc(
        h.inspect_port,
        "world.query",
        json!({"data": {"components": ["bevygap_matchmaker::deployment::DeploymentId"]}}),
    )
    .await;
    let rows = query["result"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{query}");
    let _ = Duration::ZERO;
}
