//! The local fleet: a process per deployment with its context in env, stopped with SIGTERM.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::time::Duration;

use bevygap_matchmaker::fleet::local::{LocalFleet, LocalFleetConfig};
use bevygap_matchmaker::fleet::{AllocationRequest, FleetBackend, FleetError};
use bevygap_shared::protocol::GameRef;
use bevygap_test_support::wait_until_async;

fn request() -> AllocationRequest {
    AllocationRequest {
        game: GameRef::new("spaceships", "7"),
        client_ips: vec![],
        region_hint: None,
    }
}

#[tokio::test]
async fn a_server_gets_its_context_and_stops_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("context");
    let script = format!(
        "echo \"$BEVYGAP_DEPLOYMENT_ID $BEVYGAP_PORT $BEVYGAP_APP_NAME $BEVYGAP_APP_VERSION $EXTRA\" > {}; \
         trap 'exit 0' TERM; while true; do sleep 0.05; done",
        out.display()
    );
    let fleet = LocalFleet::new(LocalFleetConfig {
        command: vec!["sh".into(), "-c".into(), script],
        ports: 47_100..=47_199,
        env: vec![("EXTRA".into(), "passed".into())],
        stop_grace: Duration::from_secs(5),
        ..LocalFleetConfig::default()
    })
    .unwrap();
    let allocation = fleet.allocate(request()).await.unwrap();
    let context = wait_until_async(
        "the server to write its context",
        Duration::from_secs(10),
        || async {
            std::fs::read_to_string(&out)
                .ok()
                .filter(|t| t.ends_with('\n'))
        },
    )
    .await;
    let fields: Vec<&str> = context.split_whitespace().collect();
    assert_eq!(fields[0], allocation.deployment_id);
    assert!((47_100..=47_199).contains(&fields[1].parse::<u16>().unwrap()));
    assert_eq!(&fields[2..], ["spaceships", "7", "passed"]);
    assert_eq!(fleet.running(), vec![allocation.deployment_id.clone()]);

    fleet.stop(allocation.deployment_id.clone()).await.unwrap();
    assert!(fleet.running().is_empty(), "stopped servers are forgotten");
    // Stopping again is fine.
    fleet.stop(allocation.deployment_id).await.unwrap();
}

#[tokio::test]
async fn the_server_limit_is_a_no_capacity_error() {
    let fleet = LocalFleet::new(LocalFleetConfig {
        command: vec!["sleep".into(), "30".into()],
        ports: 47_200..=47_299,
        max_servers: 1,
        stop_grace: Duration::from_millis(100),
        ..LocalFleetConfig::default()
    })
    .unwrap();
    let first = fleet.allocate(request()).await.unwrap();
    assert!(matches!(
        fleet.allocate(request()).await,
        Err(FleetError::NoCapacity(_))
    ));
    fleet.stop(first.deployment_id).await.unwrap();
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    assert!(matches!(
        LocalFleet::new(LocalFleetConfig::default()),
        Err(FleetError::Rejected(_))
    ));
    let fleet = LocalFleet::new(LocalFleetConfig {
        command: vec!["/nonexistent/game-server".into()],
        ports: 47_300..=47_399,
        ..LocalFleetConfig::default()
    })
    .unwrap();
    let err = fleet.allocate(request()).await.unwrap_err();
    assert!(
        matches!(&err, FleetError::Unavailable(m) if m.contains("--local-server-cmd")),
        "{err}"
    );
}

#[tokio::test]
async fn regression_stopping_an_id_this_fleet_never_started_is_an_error_not_ok() {
    let fleet = LocalFleet::new(LocalFleetConfig {
        command: vec!["true".into()],
        ..LocalFleetConfig::default()
    })
    .unwrap();
    assert_eq!(
        fleet.stop("local-999-6420-0".into()).await,
        Err(FleetError::UnknownDeployment("local-999-6420-0".into()))
    );
}
