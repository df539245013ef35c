//! The KV bridge on a real nats-server: leases and connections reach the ECS, and a NATS restart
//! in the middle of the flow is survived (events after the restart arrive, state is re-listed).

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use bevygap_test_support::wait_until_async;
use serde_json::{Value, json};
use support::app_harness::*;
use support::core_harness::lease;

async fn summary(h: &AppHarness) -> Value {
    rpc(h.inspect_port, "bevygap/summary", json!(null)).await["result"].clone()
}

fn deployment<'a>(summary: &'a Value, id: &str) -> Option<&'a Value> {
    summary["deployments"]
        .as_array()?
        .iter()
        .find(|d| d["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_move_seats_and_deleted_leases_remove_deployments() {
    let h = AppHarness::start().await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    h.open_connection("dep-a", 0, 1).await;
    h.open_connection("dep-a", 1, 2).await;
    wait_until_async("two players on dep-a", WAIT, || async {
        let s = summary(&h).await;
        (deployment(&s, "dep-a")?["connected"] == 2).then_some(())
    })
    .await;
    h.close_connection("dep-a", 0).await;
    wait_until_async("one player on dep-a", WAIT, || async {
        let s = summary(&h).await;
        (deployment(&s, "dep-a")?["free"] == 3).then_some(())
    })
    .await;
    h.stores.leases.delete("dep-a").await.unwrap();
    wait_until_async("dep-a gone", WAIT, || async {
        deployment(&summary(&h).await, "dep-a")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_flow_is_survived() {
    let mut h = AppHarness::start().await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    h.open_connection("dep-a", 0, 1).await;
    wait_until_async("dep-a with a player", WAIT, || async {
        (deployment(&summary(&h).await, "dep-a")?["connected"] == 1).then_some(())
    })
    .await;

    h.nats_server.restart().expect("restart nats-server");

    // Writes work again once JetStream has recovered; retry them with a deadline.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ok = h
            .stores
            .leases
            .put(
                "dep-b",
                bevygap_shared::schema::encode(&lease("dep-b", 2, 6421)).into(),
            )
            .await
            .is_ok();
        if ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "NATS did not come back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    h.close_connection("dep-a", 0).await;
    h.stores.leases.delete("dep-a").await.unwrap();

    wait_until_async(
        "dep-b seen and dep-a gone after the restart",
        WAIT,
        || async {
            let s = summary(&h).await;
            (deployment(&s, "dep-b").is_some() && deployment(&s, "dep-a").is_none()).then_some(())
        },
    )
    .await;

    // And the matchmaker still places players: a seed request lands on dep-b.
    let request = format!(
        r#"{{"game":"{}","version":"{}"}}"#,
        support::core_harness::GAME,
        support::core_harness::VERSION
    );
    let (replies, _) = seed_conversation(&h.mm().seed_url(), &request).await;
    assert!(
        matches!(
            replies.last(),
            Some(
                bevygap_shared::protocol::seed_json::SeedResponse::SessionReady { port: 6421, .. }
            )
        ),
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_holding_an_unreadable_record_is_never_sold() {
    let h = AppHarness::start().await;
    // Something other than Bevygap wrote the only seat of dep-a.
    h.stores
        .seats
        .store()
        .put("dep-a.0", "not a seat record".into())
        .await
        .unwrap();
    h.put_lease(&lease("dep-a", 1, 6420)).await;
    wait_until_async("dep-a with its seat counted as taken", WAIT, || async {
        (deployment(&summary(&h).await, "dep-a")?["free"] == 0).then_some(())
    })
    .await;
    let request = format!(
        r#"{{"game":"{}","version":"{}"}}"#,
        support::core_harness::GAME,
        support::core_harness::VERSION
    );
    let (replies, _) = seed_conversation(&h.mm().seed_url(), &request).await;
    assert!(
        matches!(
            replies.last(),
            Some(bevygap_shared::protocol::seed_json::SeedResponse::Error(
                503,
                _
            ))
        ),
        "{replies:?}"
    );
}
