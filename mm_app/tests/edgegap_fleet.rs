//! The Edgegap fleet backend against the offline replica and a real nats-server: allocation waits
//! for `Status.READY`, a deployment that never gets there is stopped with a clear error, stops are
//! queued in KV until Edgegap confirms them (across restarts), 429 storms are waited out, and a
//! deployment whose matchmaker died while starting it is stopped by a survivor.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::net::IpAddr;
use std::time::Duration;

use bevygap_edgegap_replica::{AppSpec, ReplicaConfig, ReplicaHandle, Route, VersionSpec};
use bevygap_matchmaker::fleet::edgegap::allocations::{AllocationLog, AllocationRecord};
use bevygap_matchmaker::fleet::edgegap::api::{DeployRequest, DeploymentUser};
use bevygap_matchmaker::fleet::edgegap::client::{EdgegapApiConfig, EdgegapClient};
use bevygap_matchmaker::fleet::edgegap::fleet::{EdgegapFleet, EdgegapFleetConfig, EdgegapMode};
use bevygap_matchmaker::fleet::edgegap::removals::RemovalQueue;
use bevygap_matchmaker::fleet::edgegap::retry::Backoff;
use bevygap_matchmaker::fleet::{AllocationRequest, FleetBackend, FleetError};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{BucketSpec, NatsSettings, connect, ensure_bucket};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::schema::{decode, encode};
use bevygap_shared::secret::Secret;
use bevygap_test_support::{NatsServer, wait_until_async};
use futures::TryStreamExt;

const APP: &str = "spaceships";
const KEY: &str = "fleet-test-key";
const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    replica: ReplicaHandle,
    nats: NatsServer,
    kv: async_nats::jetstream::kv::Store,
}

async fn setup(ready_after: Option<Duration>, fail_deployments: bool) -> Setup {
    let nats = NatsServer::start().unwrap();
    let conn = connect(
        &NatsSettings::insecure(nats.address()),
        "edgegap-fleet-test",
    )
    .await
    .unwrap();
    let names = AppNames::new(APP).unwrap();
    let kv = ensure_bucket(conn.jetstream(), &BucketSpec::fleet_removals(&names))
        .await
        .unwrap();
    let replica = bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: KEY.into(),
        apps: vec![AppSpec::new(APP, vec![VersionSpec::new("1")])],
        ready_after,
        fail_deployments,
        sockets: 4,
        ..ReplicaConfig::default()
    })
    .await
    .unwrap();
    Setup { replica, nats, kv }
}

fn client(replica: &ReplicaHandle) -> EdgegapClient {
    let mut config = EdgegapApiConfig::new(Secret::new(KEY));
    config.base_url = replica.url();
    config.backoff = Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_millis(50),
        attempts: 3,
    };
    EdgegapClient::new(&config).unwrap()
}

async fn fleet(s: &Setup, configure: impl FnOnce(&mut EdgegapFleetConfig)) -> EdgegapFleet {
    let client = client(&s.replica);
    let retry = Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_millis(100),
        attempts: u32::MAX,
    };
    let removals = RemovalQueue::open(client.clone(), s.kv.clone(), retry)
        .await
        .unwrap();
    let mut config = EdgegapFleetConfig::new(APP);
    config.poll_first = Duration::from_millis(20);
    config.poll_max = Duration::from_millis(100);
    config.ready_timeout = Duration::from_secs(10);
    configure(&mut config);
    EdgegapFleet::new(client, config, removals)
}

fn request(ips: &[&str]) -> AllocationRequest {
    AllocationRequest {
        game: GameRef::new(APP, "1"),
        client_ips: ips.iter().map(|ip| ip.parse::<IpAddr>().unwrap()).collect(),
        region_hint: None,
    }
}

async fn queued_keys(kv: &async_nats::jetstream::kv::Store) -> Vec<String> {
    kv.keys().await.unwrap().try_collect().await.unwrap()
}

async fn wait_stopped(s: &Setup, id: &str) {
    wait_until_async(
        "the deployment stopped and its queue entry gone",
        WAIT,
        || async {
            let stopped = s
                .replica
                .deployments()
                .iter()
                .any(|d| d.request_id == id && d.stopped);
            (stopped && queued_keys(&s.kv).await.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_allocated_once_ready_and_its_stop_is_confirmed() {
    let s = setup(Some(Duration::from_millis(150)), false).await;
    let fleet = fleet(&s, |_| {}).await;
    let allocation = fleet.allocate(request(&["203.0.113.7"])).await.unwrap();
    let view = &s.replica.deployments()[0];
    assert_eq!(view.request_id, allocation.deployment_id);
    assert_eq!(view.status, "Status.READY", "allocation waited for ready");
    assert_eq!(view.user_ips, ["203.0.113.7"]);

    fleet.stop(allocation.deployment_id.clone()).await.unwrap();
    wait_stopped(&s, &allocation.deployment_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_never_becomes_ready_fails_the_allocation_and_is_stopped() {
    let s = setup(None, false).await;
    let fleet = fleet(&s, |c| c.ready_timeout = Duration::from_secs(1)).await;
    let error = fleet.allocate(request(&["203.0.113.7"])).await.unwrap_err();
    let FleetError::Unavailable(text) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(text.contains("was not ready after 1 s"), "{text}");
    assert!(text.contains("Status.DEPLOYING"), "{text}");
    assert!(text.contains("being stopped"), "{text}");
    let id = s.replica.deployments()[0].request_id.clone();
    wait_stopped(&s, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_reports_edgegaps_detail_and_is_stopped() {
    let s = setup(Some(Duration::from_millis(50)), true).await;
    let fleet = fleet(&s, |_| {}).await;
    let error = fleet.allocate(request(&["203.0.113.7"])).await.unwrap_err();
    assert!(error.to_string().contains("Status.ERROR"), "{error}");
    let id = s.replica.deployments()[0].request_id.clone();
    wait_stopped(&s, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_stops_survive_a_matchmaker_restart() {
    let s = setup(Some(Duration::ZERO), false).await;
    let first = fleet(&s, |_| {}).await;
    let id = first
        .allocate(request(&["203.0.113.7"]))
        .await
        .unwrap()
        .deployment_id;
    // Edgegap fails every stop while the first matchmaker runs.
    s.replica.inject(Route::Stop, 503, 100_000);
    first.stop(id.clone()).await.unwrap();
    assert_eq!(queued_keys(&s.kv).await, [format!("deployment.{id}")]);
    wait_until_async("a failed stop attempt", WAIT, || async {
        s.replica
            .calls()
            .iter()
            .any(|c| c.route == Route::Stop && c.status == 503)
            .then_some(())
    })
    .await;
    drop(first);

    // Edgegap recovers; a new matchmaker finds the stop in KV and finishes it.
    s.replica.clear_faults();
    let _second = fleet(&s, |_| {}).await;
    wait_stopped(&s, &id).await;
    drop(s.nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_sessions_allocate_the_linked_deployment_and_are_deleted_on_stop() {
    let s = setup(Some(Duration::from_millis(100)), false).await;
    let fleet = fleet(&s, |c| c.mode = EdgegapMode::Sessions).await;
    let first = fleet.allocate(request(&["203.0.113.7"])).await.unwrap();
    let second = fleet.allocate(request(&["198.51.100.2"])).await.unwrap();
    assert_eq!(
        first.deployment_id, second.deployment_id,
        "Edgegap links both sessions to the deployment with free seats"
    );
    fleet.stop(first.deployment_id.clone()).await.unwrap();
    wait_stopped(&s, &first.deployment_id).await;
    let deletes: Vec<u16> = s
        .replica
        .calls()
        .iter()
        .filter(|c| c.route == Route::DeleteSession)
        .map(|c| c.status)
        .collect();
    assert_eq!(deletes.len(), 2, "both sessions were deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_player_ips_use_the_fallback_or_explain_what_to_set() {
    let s = setup(Some(Duration::ZERO), false).await;
    let without = fleet(&s, |_| {}).await;
    let error = without.allocate(request(&[])).await.unwrap_err();
    assert!(matches!(error, FleetError::Rejected(_)));
    assert!(
        error.to_string().contains("--edgegap-fallback-ip"),
        "{error}"
    );

    let with = fleet(&s, |c| {
        c.fallback_ips = vec!["192.0.2.10".parse().unwrap()];
    })
    .await;
    with.allocate(request(&[])).await.unwrap();
    assert_eq!(s.replica.deployments()[0].user_ips, ["192.0.2.10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_429_on_deploy_and_status_drops_no_allocation() {
    let s = setup(Some(Duration::from_millis(100)), false).await;
    let fleet = fleet(&s, |_| {}).await;
    s.replica.inject(Route::Deploy, 429, 40);
    s.replica.inject(Route::Status, 429, 40);
    let allocations = (0..8).map(|_| fleet.allocate(request(&["203.0.113.7"])));
    let results = futures::future::join_all(allocations).await;
    let ids: std::collections::HashSet<String> = results
        .into_iter()
        .map(|r| r.unwrap().deployment_id)
        .collect();
    assert_eq!(ids.len(), 8, "every allocation got its own deployment");
    let rate_limited = s.replica.calls().iter().filter(|c| c.status == 429).count();
    assert_eq!(rate_limited, 80, "the whole storm was absorbed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_could_not_be_a_lease_key_fails_the_allocation_cleanly() {
    let s = setup(Some(Duration::ZERO), false).await;
    let fleet = fleet(&s, |_| {}).await;
    s.replica
        .inject_body(Route::Deploy, 202, r#"{"request_id":"a.b>c"}"#, 1);
    let error = fleet.allocate(request(&["203.0.113.7"])).await.unwrap_err();
    assert!(
        error.to_string().contains("cannot be a lease key"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_queued_removal_is_dropped_and_the_queue_still_opens() {
    let s = setup(Some(Duration::ZERO), false).await;
    s.kv.put("deployment.garbage", "not a record".into())
        .await
        .unwrap();
    let fleet = fleet(&s, |_| {}).await;
    assert!(fleet.removals().pending().is_empty());
    wait_until_async("the unreadable entry dropped", WAIT, || async {
        queued_keys(&s.kv).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_whose_matchmaker_died_while_starting_it_is_stopped_by_a_survivor() {
    let s = setup(None, false).await;
    let conn = connect(
        &NatsSettings::insecure(s.nats.address()),
        "allocations-test",
    )
    .await
    .unwrap();
    let names = AppNames::new(APP).unwrap();
    let js = conn.jetstream();
    let records = ensure_bucket(js, &BucketSpec::fleet_allocations(&names))
        .await
        .unwrap();
    let presence = ensure_bucket(js, &BucketSpec::matchmakers(&names))
        .await
        .unwrap();
    let leases = ensure_bucket(js, &BucketSpec::leases(&names))
        .await
        .unwrap();
    let log = |owner: &str| AllocationLog {
        records: records.clone(),
        presence: presence.clone(),
        leases: leases.clone(),
        owner: owner.into(),
    };

    // A matchmaker starts a server and dies while Edgegap deploys it.
    let dying = fleet(&s, |_| {}).await.with_allocation_log(log("mm-dying"));
    let allocating = tokio::spawn(async move { dying.allocate(request(&["203.0.113.7"])).await });
    let id = wait_until_async(
        "the allocation recorded with its request id",
        WAIT,
        || async {
            let key = queued_keys(&records).await.into_iter().next()?;
            let bytes = records.get(&key).await.ok()??;
            decode::<AllocationRecord>(&bytes).ok()?.request_id
        },
    )
    .await;
    allocating.abort();
    let tags = &s.replica.deployments()[0].tags;
    assert!(
        tags.iter().any(|t| t.starts_with("a-")),
        "the deployment carries its allocation tag: {tags:?}"
    );

    // A survivor is present, the dead one is not: the survivor stops the deployment.
    presence.put("mm-survivor", "1".into()).await.unwrap();
    let survivor = fleet(&s, |_| {})
        .await
        .with_allocation_log(log("mm-survivor"));
    assert_eq!(
        survivor
            .take_over_allocations(Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    wait_stopped(&s, &id).await;
    assert!(queued_keys(&records).await.is_empty(), "the record is gone");
    // Nothing more to take over, and a live matchmaker's allocations are never touched.
    assert_eq!(
        survivor
            .take_over_allocations(Duration::ZERO)
            .await
            .unwrap(),
        0
    );

    // A matchmaker that died before Edgegap answered: its deployment is found by its tag.
    let orphan = AllocationRecord {
        owner: "mm-gone".into(),
        tag: "a-orphan".into(),
        request_id: None,
        started_at_ms: 0,
    };
    records
        .put("a-orphan", encode(&orphan).into())
        .await
        .unwrap();
    let accepted = client(&s.replica)
        .deploy(&DeployRequest {
            application: APP.into(),
            version: "1".into(),
            users: vec![DeploymentUser::ip("203.0.113.8")],
            environment_variables: vec![],
            tags: vec!["bevygap".into(), "a-orphan".into()],
            webhook_on_ready: None,
            webhook_on_error: None,
            webhook_on_terminated: None,
        })
        .await
        .unwrap();
    assert_eq!(
        survivor
            .take_over_allocations(Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    wait_stopped(&s, &accepted.request_id).await;
}
