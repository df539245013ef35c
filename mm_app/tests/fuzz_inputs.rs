//! Fuzzing what the Edgegap API answers and what other matchmakers leave in KV: every response
//! type the Edgegap client reads, and the allocation and removal records. Any input gives a value
//! or a typed error, never a panic.

use bevygap_matchmaker::fleet::edgegap::allocations::AllocationRecord;
use bevygap_matchmaker::fleet::edgegap::api::{
    AppInfo, DeployAccepted, DeploymentList, DeploymentStatus, SessionCreated, SessionStatus,
    VersionInfo,
};
use bevygap_matchmaker::fleet::edgegap::removals::{QueuedRemoval, RemovalTarget};
use bevygap_shared::schema::{decode, encode};
use bevygap_test_support::fuzz::fuzz;

#[test]
fn edgegap_answers_parse_or_are_refused() {
    let seeds: [&[u8]; 5] = [
        br#"{"request_id":"a1b2","current_status":"Status.READY","running":true,"error":false,
            "public_ip":"203.0.113.7","fqdn":"a1b2.pr.edgegap.net",
            "ports":{"gameport":{"internal":6420,"external":31500,"protocol":"UDP"}},
            "tags":["bevygap"],"elapsed_time":12}"#,
        br#"{"session_id":"s-1","status":"Status.READY","ready":true,"linked":true,
            "deployment":{"request_id":"a1b2","current_status":"Status.ERROR","error":true}}"#,
        br#"{"request_id":"a1b2","message":"Deployment is being created"}"#,
        br#"{"name":"bevygap-spaceships","is_active":true}"#,
        br#"{"data":[{"request_id":"a1b2","status":"Status.READY","tags":["x"]}],
            "total_count":1,"pagination":{"number":1,"has_next":false}}"#,
    ];
    let report = fuzz("Edgegap answers", &seeds, |bytes| {
        let status = serde_json::from_slice::<DeploymentStatus>(bytes)
            .map(|s| (s.is_ready(), s.has_failed()))
            .is_ok();
        let session = serde_json::from_slice::<SessionStatus>(bytes)
            .map(|s| s.has_failed())
            .is_ok();
        let others = serde_json::from_slice::<DeployAccepted>(bytes).is_ok()
            || serde_json::from_slice::<SessionCreated>(bytes).is_ok()
            || serde_json::from_slice::<AppInfo>(bytes).is_ok()
            || serde_json::from_slice::<VersionInfo>(bytes).is_ok()
            || serde_json::from_slice::<DeploymentList>(bytes).is_ok();
        status || session || others
    });
    assert!(report.accepted > 0, "the fuzzer reached past the parser");
}

#[test]
fn allocation_and_removal_records_decode_or_are_refused() {
    let seeds = [
        encode(&AllocationRecord {
            owner: "mm-1".into(),
            tag: "bevygap-abc".into(),
            request_id: Some("a1b2".into()),
            started_at_ms: 1_000,
        }),
        encode(&QueuedRemoval {
            target: RemovalTarget::Session("s-1".into()),
            reason: "empty".into(),
            queued_at_ms: 2_000,
        }),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    fuzz("allocation and removal records", &seeds, |bytes| {
        let allocation = decode::<AllocationRecord>(bytes)
            .map(|r| assert_eq!(decode::<AllocationRecord>(&encode(&r)).ok(), Some(r)))
            .is_ok();
        let removal = decode::<QueuedRemoval>(bytes).is_ok();
        allocation || removal
    });
}

#[test]
fn what_ws_clients_send_decodes_or_is_refused() {
    use bevy_simplenet::AuthRequest;
    use bevygap_matchmaker::intake::simplenet::{ClientAuth, ToServer, decode};
    use bevygap_shared::protocol::GameRef;
    use bevygap_shared::protocol::channel::{ClientHello, ClientMsg, MatchRequest, RegionPing};
    use bincode::Options;

    let codec = bincode::DefaultOptions::new();
    let seeds = [
        codec
            .serialize(&ToServer::Authenticate(ClientAuth {
                auth: AuthRequest::None { client_id: 7 },
                msg: ClientHello {
                    game: GameRef::new("bevygap-spaceships", "1"),
                    client_build: "linux x86_64 abc123".into(),
                },
            }))
            .expect("auth"),
        codec
            .serialize(&ToServer::Request(
                MatchRequest {
                    region_pings: vec![RegionPing {
                        region: "eu".into(),
                        rtt_ms: 20,
                    }],
                    player_token: Some("eyJhbGciOiJIUzI1NiJ9.e30.sig".into()),
                    ..MatchRequest::default()
                },
                u64::MAX,
            ))
            .expect("request"),
        codec
            .serialize(&ToServer::Msg(ClientMsg::Cancel))
            .expect("cancel"),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let report = fuzz("/ws client messages", &seeds, |bytes| {
        decode(bytes).is_some()
    });
    assert!(report.accepted > 0, "the fuzzer reached past the decoder");
}
