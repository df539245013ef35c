//! The Edgegap HTTP client against the offline replica: every endpoint, every error class, retries
//! and the client-side rate limits.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::time::Duration;

use bevygap_edgegap_replica::{AppSpec, ReplicaConfig, ReplicaHandle, Route, VersionSpec};
use bevygap_matchmaker::fleet::edgegap::api::{
    DeployRequest, DeploymentUser, EnvVar, STATUS_DEPLOYING, STATUS_READY, SessionRequest,
};
use bevygap_matchmaker::fleet::edgegap::checks::{CheckError, check_app};
use bevygap_matchmaker::fleet::edgegap::client::{EdgegapApiConfig, EdgegapClient, Removal};
use bevygap_matchmaker::fleet::edgegap::error::EdgegapError;
use bevygap_matchmaker::fleet::edgegap::retry::Backoff;
use bevygap_shared::secret::Secret;
use bevygap_test_support::wait_until_async;

const APP: &str = "spaceships";
const KEY: &str = "0b6c5e8a-test-key";

async fn replica(ready_after: Option<Duration>) -> ReplicaHandle {
    let mut inactive = VersionSpec::new("old");
    inactive.is_active = false;
    bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: KEY.into(),
        apps: vec![AppSpec::new(
            APP,
            vec![VersionSpec::new("1"), VersionSpec::new("2"), inactive],
        )],
        ready_after,
        ..ReplicaConfig::default()
    })
    .await
    .unwrap()
}

fn client_for(replica: &ReplicaHandle, key: &str) -> EdgegapClient {
    let mut config = EdgegapApiConfig::new(Secret::new(key));
    config.base_url = replica.url();
    config.backoff = Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_millis(50),
        attempts: 3,
    };
    config.rate_limited_budget = Duration::from_secs(10);
    EdgegapClient::new(&config).unwrap()
}

fn deploy_request(version: &str) -> DeployRequest {
    DeployRequest {
        application: APP.into(),
        version: version.into(),
        users: vec![DeploymentUser::ip("203.0.113.7")],
        environment_variables: vec![
            EnvVar {
                key: "NATS_HOST".into(),
                value: "nats.example.com".into(),
                is_hidden: false,
            },
            EnvVar {
                key: "NATS_PASSWORD".into(),
                value: "s3cret".into(),
                is_hidden: true,
            },
        ],
        tags: vec!["bevygap".into()],
        webhook_on_ready: None,
        webhook_on_error: None,
        webhook_on_terminated: None,
    }
}

fn statuses(replica: &ReplicaHandle, route: Route) -> Vec<u16> {
    replica
        .calls()
        .into_iter()
        .filter(|c| c.route == route)
        .map(|c| c.status)
        .collect()
}

#[tokio::test]
async fn a_v2_deployment_goes_from_deploying_to_ready_and_stops_once() {
    let replica = replica(Some(Duration::from_millis(300))).await;
    let client = client_for(&replica, KEY);

    let accepted = client.deploy(&deploy_request("1")).await.unwrap();
    let id = accepted.request_id;
    let first = client.deployment_status(&id).await.unwrap();
    assert_eq!(first.current_status, STATUS_DEPLOYING);
    assert!(!first.is_ready() && !first.has_failed());

    let ready = wait_until_async(
        "the deployment to be ready",
        Duration::from_secs(10),
        || async {
            client
                .deployment_status(&id)
                .await
                .ok()
                .filter(|s| s.is_ready())
        },
    )
    .await;
    assert_eq!(ready.current_status, STATUS_READY);
    assert_eq!(ready.endpoint.public_ip.as_deref(), Some("127.0.0.1"));
    assert!(ready.endpoint.fqdn.unwrap().starts_with(&id));
    let port = &ready.endpoint.ports["gameport"];
    assert_eq!(port.internal, 6420);
    assert_eq!(port.protocol.as_deref(), Some("UDP"));

    let listed = client.deployments().await.unwrap();
    assert!(listed.data.iter().any(|d| d.request_id == id && d.ready));

    let seen = &replica.deployments()[0];
    assert_eq!(seen.user_ips, ["203.0.113.7"]);
    assert_eq!(seen.tags, ["bevygap"]);
    assert!(
        seen.env
            .contains(&("NATS_PASSWORD".into(), "s3cret".into(), true)),
        "secrets are sent hidden"
    );

    assert_eq!(client.stop_deployment(&id).await.unwrap(), Removal::Removed);
    assert_eq!(
        client.stop_deployment(&id).await.unwrap(),
        Removal::AlreadyGone,
        "410 on a second stop means done"
    );
    assert_eq!(
        client.stop_deployment("feedfacecafe").await.unwrap(),
        Removal::AlreadyGone,
        "404 on an unknown deployment means done"
    );
    assert_eq!(statuses(&replica, Route::Stop), [200, 410, 404]);
}

#[tokio::test]
async fn a_seat_session_is_seeking_then_ready_with_its_deployment() {
    let replica = replica(Some(Duration::from_millis(200))).await;
    let client = client_for(&replica, KEY);
    let created = client
        .create_session(&SessionRequest {
            app_name: APP.into(),
            version_name: "1".into(),
            ip_list: vec!["203.0.113.7".into(), "198.51.100.2".into()],
            webhook_url: None,
        })
        .await
        .unwrap();
    let first = client.session(&created.session_id).await.unwrap();
    assert_eq!(first.status, "Status.SEEKING");
    assert!(!first.ready && first.deployment.is_none());

    let ready = wait_until_async(
        "the session to be ready",
        Duration::from_secs(10),
        || async {
            client
                .session(&created.session_id)
                .await
                .ok()
                .filter(|s| s.ready)
        },
    )
    .await;
    assert_eq!(ready.status, "Status.READY");
    let deployment = ready.deployment.unwrap();
    assert_eq!(
        Some(deployment.request_id.clone()),
        created.deployment_request_id
    );
    assert!(deployment.is_ready());

    assert_eq!(
        client.delete_session(&created.session_id).await.unwrap(),
        Removal::Removed
    );
    assert_eq!(
        client.delete_session(&created.session_id).await.unwrap(),
        Removal::AlreadyGone
    );
}

#[tokio::test]
async fn start_up_checks_explain_what_is_wrong() {
    let replica = replica(None).await;
    let client = client_for(&replica, KEY);

    let versions = check_app(&client, APP, &["1".into(), "2".into()])
        .await
        .unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].ports[0].name.as_deref(), Some("gameport"));

    let missing_app = check_app(&client, "asteroids", &["1".into()])
        .await
        .unwrap_err();
    assert!(matches!(missing_app, CheckError::NoApp { .. }));
    assert!(missing_app.to_string().contains("--app-name"));

    let missing_version = check_app(&client, APP, &["9".into()]).await.unwrap_err();
    assert!(matches!(missing_version, CheckError::NoVersion { .. }));
    assert!(missing_version.to_string().contains("--app-version"));

    let inactive = check_app(&client, APP, &["old".into()]).await.unwrap_err();
    assert!(matches!(inactive, CheckError::VersionInactive { .. }));

    let refused = check_app(&client_for(&replica, "wrong-key"), APP, &["1".into()])
        .await
        .unwrap_err();
    assert_eq!(refused, CheckError::Unauthorized);
    assert!(!refused.is_transient());

    let mut config = EdgegapApiConfig::new(Secret::new(KEY));
    config.base_url = format!(
        "http://127.0.0.1:{}",
        bevygap_test_support::free_tcp_port().unwrap()
    );
    config.backoff.attempts = 1;
    let unreachable = check_app(&EdgegapClient::new(&config).unwrap(), APP, &["1".into()])
        .await
        .unwrap_err();
    assert!(unreachable.is_transient(), "{unreachable}");
}

#[tokio::test]
async fn the_key_works_with_or_without_its_token_prefix() {
    let replica = replica(None).await;
    assert!(client_for(&replica, KEY).app(APP).await.is_ok());
    assert!(
        client_for(&replica, &format!("token {KEY}"))
            .app(APP)
            .await
            .is_ok()
    );
    let refused = client_for(&replica, "nope").app(APP).await.unwrap_err();
    assert_eq!(refused, EdgegapError::Unauthorized { status: 401 });
    assert!(refused.to_string().contains("EDGEGAP_API_KEY"));
    assert!(
        !refused.to_string().contains("nope"),
        "the key is never shown"
    );
    assert_eq!(
        statuses(&replica, Route::App),
        [200, 200, 401],
        "401 is not retried"
    );
}

#[tokio::test]
async fn setting_version_arguments_reaches_the_version() {
    let replica = replica(None).await;
    let client = client_for(&replica, KEY);
    let arguments = "--ca_contents '-----BEGIN CERTIFICATE-----MIIB'";
    let updated = client
        .set_version_arguments(APP, "1", arguments)
        .await
        .unwrap();
    assert!(updated.success);
    assert_eq!(updated.version.arguments.as_deref(), Some(arguments));
    let read = client.app_version(APP, "1").await.unwrap();
    assert_eq!(read.arguments.as_deref(), Some(arguments));
}

#[tokio::test]
async fn every_error_class_is_typed_and_only_retryable_ones_are_retried() {
    let replica = replica(None).await;
    let client = client_for(&replica, KEY);
    type IsExpected = fn(&EdgegapError) -> bool;
    let cases: [(u16, IsExpected); 4] = [
        (400, |e| matches!(e, EdgegapError::BadRequest(_))),
        (409, |e| matches!(e, EdgegapError::Conflict(_))),
        (422, |e| matches!(e, EdgegapError::NoCapacity(_))),
        (403, |e| {
            matches!(e, EdgegapError::Unauthorized { status: 403 })
        }),
    ];
    for (status, expected) in cases {
        replica.inject(Route::Deploy, status, 1);
        let error = client.deploy(&deploy_request("1")).await.unwrap_err();
        assert!(expected(&error), "{status} gave {error:?}");
    }
    assert_eq!(
        statuses(&replica, Route::Deploy),
        [400, 409, 422, 403],
        "none of these was retried"
    );

    // 5xx: retried up to the attempt limit, then reported.
    replica.inject(Route::Status, 503, 3);
    let error = client.deployment_status("abc123").await.unwrap_err();
    assert!(matches!(error, EdgegapError::Server { status: 503, .. }));
    assert!(error.is_retryable());
    assert_eq!(statuses(&replica, Route::Status), [503, 503, 503]);

    // A 5xx that passes is absorbed.
    replica.inject(Route::Deploy, 502, 2);
    assert!(client.deploy(&deploy_request("1")).await.is_ok());

    // Not found is typed (and for deletes means done).
    let error = client.deployment_status("abc123").await.unwrap_err();
    assert!(matches!(error, EdgegapError::NotFound(_)));
    assert!(matches!(
        client.app_version(APP, "nope").await,
        Err(EdgegapError::NotFound(_))
    ));

    // Ids that could change the path never reach the network.
    assert!(matches!(
        client.deployment_status("../v1/deployments").await,
        Err(EdgegapError::BadRequest(_))
    ));
}

#[tokio::test]
async fn a_storm_of_429_is_waited_out_instead_of_failing() {
    let replica = replica(Some(Duration::ZERO)).await;
    let client = client_for(&replica, KEY);
    replica.inject(Route::Deploy, 429, 12);
    let accepted = client.deploy(&deploy_request("1")).await.unwrap();
    assert!(!accepted.request_id.is_empty());
    let deploys = statuses(&replica, Route::Deploy);
    assert_eq!(deploys.len(), 13);
    assert_eq!(deploys.last(), Some(&202));
}

#[tokio::test]
async fn the_client_stays_below_edgegaps_status_rate_limit() {
    // The replica answers 429 above Edgegap's 20 status reads per second; the client's own limit
    // (16/s) keeps a burst of 40 concurrent reads from ever hitting it.
    let replica = replica(Some(Duration::ZERO)).await;
    let client = client_for(&replica, KEY);
    let id = client
        .deploy(&deploy_request("1"))
        .await
        .unwrap()
        .request_id;
    let reads = (0..40).map(|_| client.deployment_status(&id));
    let results = futures::future::join_all(reads).await;
    assert!(results.iter().all(Result::is_ok));
    let status_calls = statuses(&replica, Route::Status);
    assert_eq!(status_calls.len(), 40);
    assert!(status_calls.iter().all(|s| *s == 200), "{status_calls:?}");
}

#[tokio::test]
async fn listing_deployments_follows_every_page() {
    let replica = bevygap_edgegap_replica::start(ReplicaConfig {
        api_key: KEY.into(),
        apps: vec![AppSpec::new(APP, vec![VersionSpec::new("1")])],
        max_page_size: 2,
        ..ReplicaConfig::default()
    })
    .await
    .unwrap();
    let client = client_for(&replica, KEY);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            client
                .deploy(&deploy_request("1"))
                .await
                .unwrap()
                .request_id,
        );
    }
    let first = client.deployments_page(1).await.unwrap();
    assert_eq!(first.data.len(), 2);
    assert!(first.pagination.unwrap().has_next);

    let all = client.deployments().await.unwrap();
    let mut listed: Vec<String> = all.data.into_iter().map(|d| d.request_id).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    assert_eq!(all.total_count, Some(5));
    assert_eq!(
        statuses(&replica, Route::ListDeployments),
        [200, 200, 200, 200]
    );
}

#[tokio::test]
async fn malformed_truncated_and_oversized_answers_are_typed_errors() {
    let replica = replica(None).await;
    let client = client_for(&replica, KEY);

    replica.inject_body(Route::Status, 200, "<html>Bad gateway</html>", 1);
    let error = client.deployment_status("abc123").await.unwrap_err();
    assert!(matches!(error, EdgegapError::Unexpected(_)), "{error:?}");

    replica.inject_body(Route::Deploy, 202, r#"{"message":"accepted"}"#, 1);
    let error = client.deploy(&deploy_request("1")).await.unwrap_err();
    assert!(
        matches!(&error, EdgegapError::Unexpected(text) if text.contains("request_id")),
        "{error:?}"
    );

    replica.inject_body(Route::App, 200, "x".repeat(5 * 1024 * 1024), 1);
    let error = client.app(APP).await.unwrap_err();
    assert!(
        matches!(&error, EdgegapError::Unexpected(text) if text.contains("larger than")),
        "{error:?}"
    );

    // An HTML error page is kept short in the error, and 5xx is still retried as such.
    replica.inject_body(
        Route::Version,
        502,
        format!("<html>{}</html>", "o".repeat(2000)),
        3,
    );
    let error = client.app_version(APP, "1").await.unwrap_err();
    assert!(matches!(error, EdgegapError::Server { status: 502, .. }));
    assert!(error.to_string().len() < 500, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_call_is_counted_by_route_and_status() {
    let replica = replica(Some(Duration::ZERO)).await;
    let metrics = bevygap_matchmaker::metrics::Metrics::default();
    let client = client_for(&replica, KEY).with_metrics(metrics.clone());
    let accepted = client.deploy(&deploy_request("1")).await.unwrap();
    client
        .deployment_status(&accepted.request_id)
        .await
        .unwrap();
    assert!(
        client
            .deploy(&deploy_request("no-such-version"))
            .await
            .is_err()
    );
    let text = metrics.render();
    for line in [
        r#"bevygap_edgegap_api_calls_total{route="POST /v2/deployments",status="202"} 1"#,
        r#"bevygap_edgegap_api_calls_total{route="GET /v1/status",status="200"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    assert!(
        text.contains(r#"route="POST /v2/deployments",status="4"#),
        "the refused deploy is counted with its status:\n{text}"
    );
}
