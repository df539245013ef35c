//! Live inspection over bevy_remote: `world.query` sees deployments, `bevygap/summary` counts;
//! the endpoint is read-only unless writes are allowed, refuses browser pages, and off loopback
//! wants its bearer token.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::inspect::InspectConfig;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_shared::secret::Secret;
use bevygap_test_support::{json_rpc_with_headers, wait_until_async};
use serde_json::{Value, json};
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

/// A world-changing call the default endpoint must refuse.
fn despawn(entity: &Value) -> Value {
    json!({ "entity": entity })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_world_can_be_read_but_not_changed() {
    let h = AppHarness::start().await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    let rows = wait_until_async("dep-a in the world", WAIT, || async {
        let reply = rpc(
            h.inspect_port,
            "world.query",
            json!({"data": {"components": ["bevygap_matchmaker::deployment::DeploymentId"]}}),
        )
        .await;
        let rows = reply["result"].as_array()?.clone();
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    let entity = &rows[0]["entity"];
    for (method, params) in [
        ("world.despawn_entity", despawn(entity)),
        ("world.spawn_entity", json!({ "components": {} })),
        (
            "world.insert_resources",
            json!({ "resource": "x", "value": {} }),
        ),
        (
            "world.mutate_components",
            json!({ "entity": entity, "component": "x", "path": "", "value": 0 }),
        ),
    ] {
        let reply = rpc(h.inspect_port, method, params).await;
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("--remote-allow-writes"),
            "{method} must be refused: {reply}"
        );
    }
    let still = rpc(
        h.inspect_port,
        "world.query",
        json!({"data": {"components": ["bevygap_matchmaker::deployment::DeploymentId"]}}),
    )
    .await;
    assert_eq!(still["result"].as_array().map(Vec::len), Some(1), "{still}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_served_when_allowed() {
    let h = AppHarness::start_adjusted(Limits::default(), FleetChoice::Static, |config| {
        if let Some(inspect) = &mut config.inspect {
            inspect.allow_writes = true;
        }
    })
    .await;
    let reply = wait_until_async("the endpoint to answer", WAIT, || async {
        let reply = rpc(
            h.inspect_port,
            "world.spawn_entity",
            json!({ "components": {} }),
        )
        .await;
        reply.get("result").is_some().then_some(reply)
    })
    .await;
    assert!(reply["result"]["entity"].is_u64(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_is_refused() {
    let h = AppHarness::start().await;
    let (status, reply) = wait_until_async("the endpoint to answer", WAIT, || async {
        json_rpc_with_headers(
            h.inspect_port,
            "bevygap/summary",
            Value::Null,
            &[("Origin", "https://a-page.example")],
        )
        .await
    })
    .await;
    assert_eq!(status, 403, "{reply}");
    assert!(reply.get("result").is_none(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_every_call_needs_the_bearer_token() {
    let h = AppHarness::start_adjusted(Limits::default(), FleetChoice::Static, |config| {
        let port = config.inspect.as_ref().map_or(0, |i| i.port);
        config.inspect = Some(InspectConfig {
            address: [0, 0, 0, 0].into(),
            token: Some(Secret::new("t0ken-for-tests")),
            ..InspectConfig::loopback(port)
        });
    })
    .await;
    let call = |headers: &'static [(&'static str, &'static str)]| {
        json_rpc_with_headers(h.inspect_port, "bevygap/summary", Value::Null, headers)
    };
    let (status, _) = wait_until_async("the endpoint to answer", WAIT, || call(&[])).await;
    assert_eq!(status, 401);
    let (status, _) = call(&[("Authorization", "Bearer wrong")]).await.unwrap();
    assert_eq!(status, 401);
    let (status, reply) = call(&[("Authorization", "Bearer t0ken-for-tests")])
        .await
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert!(reply["result"]["tickets"].is_object(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_json_rpc_errors_not_a_dropped_connection() {
    let h = AppHarness::start().await;
    let url = format!("http://127.0.0.1:{}", h.inspect_port);
    let post = |body: String| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .ok()?;
            response.json::<Value>().await.ok()
        }
    };
    let not_json =
        wait_until_async("the endpoint to answer", WAIT, || post("{not json".into())).await;
    assert_eq!(not_json["error"]["code"], -32700, "{not_json}");

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "bevygap/summary"});
    let too_many = post(Value::Array(vec![call; 65]).to_string())
        .await
        .unwrap();
    assert_eq!(too_many["error"]["code"], -32600, "{too_many}");

    let no_method = post(json!({"jsonrpc": "2.0", "id": 2}).to_string())
        .await
        .unwrap();
    assert_eq!(no_method["error"]["code"], -32600, "{no_method}");

    let watch = post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "world.get_components+watch"}).to_string(),
    )
    .await
    .unwrap();
    let message = watch["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("poll instead"), "{watch}");
}
