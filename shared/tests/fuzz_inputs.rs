//! Fuzzing what peers send that `bevygap_shared` decodes: every KV record, connect-token user
//! data, the seed JSON request, and the simplenet messages (bincode, as `bevy_simplenet` frames
//! them). Each decoder answers any input with a value or a typed error, never a panic; what
//! decodes encodes back to itself. `ci/fuzz.sh` runs these for longer (see
//! `bevygap_test_support::fuzz`).

use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{
    ClientHello, ClientMsg, MatchRequest, MatchResult, RegionPing, ServerMsg,
};
use bevygap_shared::protocol::seed_json::{SeedResponse, parse_request};
use bevygap_shared::schema::KvRecord;
use bevygap_shared::schema::{
    ActiveConnection, DeploymentLease, Location, Reservation, SeatHolder, SeatRecord, Transport,
    decode, encode,
};
use bevygap_shared::token_data::{TokenUserData, USER_DATA_BYTES};
use bevygap_test_support::fuzz::fuzz;
use bincode::Options;

fn lease() -> DeploymentLease {
    DeploymentLease {
        deployment_id: "dep-a".into(),
        game: "bevygap-spaceships".into(),
        game_version: "1".into(),
        public_addr: "127.0.0.1:6420".parse().expect("addr"),
        fqdn: Some("a.example".into()),
        transport: Transport::Udp,
        cert_digest: None,
        capacity: 8,
        players: 3,
        location: Some(Location {
            region: "Frankfurt".into(),
            country: Some("Germany".into()),
            latitude: Some(50.1),
            longitude: Some(8.7),
        }),
        started_at_ms: 1_000,
        heartbeat_at_ms: 2_000,
        accepting: true,
        backfill: None,
    }
}

fn seat(holder: SeatHolder) -> SeatRecord {
    SeatRecord {
        deployment_id: "dep-a".into(),
        seat: 2,
        holder,
    }
}

/// Decodes `bytes` as `T`; what decodes must encode and decode to the same value.
fn record_round_trip<T: KvRecord + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> bool {
    match decode::<T>(bytes) {
        Ok(record) => {
            let again = decode::<T>(&encode(&record)).expect("what decoded encodes");
            assert_eq!(again, record);
            true
        }
        Err(error) => {
            let _ = error.to_string();
            false
        }
    }
}

#[test]
fn kv_records_decode_or_refuse_any_bytes() {
    let seeds = [
        encode(&lease()),
        encode(&seat(SeatHolder::Reserved {
            reservation_id: "r-1".into(),
            client_id: 7,
            issued_at_ms: 1,
            expires_at_ms: 2,
        })),
        encode(&seat(SeatHolder::Connected {
            reservation_id: "r-1".into(),
            client_id: 7,
            connected_at_ms: 3,
        })),
        encode(&seat(SeatHolder::Closing { since_ms: 4 })),
        encode(&ActiveConnection {
            deployment_id: "dep-a".into(),
            client_id: 7,
            reservation_id: "r-1".into(),
            connected_at_ms: 5,
        }),
        encode(&Reservation {
            reservation_id: "r-1".into(),
            deployment_id: "dep-a".into(),
            client_id: 7,
            issued_at_ms: 1,
            expires_at_ms: 2,
        }),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let report = fuzz("kv records", &seeds, |bytes| {
        let lease = record_round_trip::<DeploymentLease>(bytes);
        let seat = match decode::<SeatRecord>(bytes) {
            Ok(record) => {
                let _ = record.reservation();
                assert_eq!(decode::<SeatRecord>(&encode(&record)).ok(), Some(record));
                true
            }
            Err(_) => false,
        };
        let connection = record_round_trip::<ActiveConnection>(bytes);
        let reservation = record_round_trip::<Reservation>(bytes);
        lease || seat || connection || reservation
    });
    assert!(report.accepted > 0, "the fuzzer reached past the parser");
}

#[test]
fn token_user_data_decodes_or_refuses_any_bytes() {
    let valid = TokenUserData {
        deployment_id: "dep-a".into(),
        reservation_id: "r-6b1f".into(),
        expires_at_ms: 1_700_000_000_000,
        team: Some(1),
    }
    .encode()
    .expect("encodes");
    fuzz("token user data", &[&valid[..]], |bytes| {
        let mut data = [0u8; USER_DATA_BYTES];
        let n = bytes.len().min(USER_DATA_BYTES);
        data[..n].copy_from_slice(&bytes[..n]);
        match TokenUserData::decode(&data) {
            Ok(decoded) => {
                let again = decoded.encode().expect("what decoded encodes");
                assert_eq!(TokenUserData::decode(&again).expect("decodes"), decoded);
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn the_seed_json_request_parses_or_refuses_any_text() {
    let seeds: [&[u8]; 3] = [
        br#"{"game":"bevygap-spaceships","version":"1"}"#,
        br#"{"game":"g","version":"0.3.2","extra":[1,2,{"x":null}]}"#,
        br#""Acknowledged""#,
    ];
    let report = fuzz("seed JSON request", &seeds, |bytes| {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return false;
        };
        match parse_request(text, 4096) {
            Ok(request) => {
                request.game.validate().expect("a parsed request is valid");
                true
            }
            Err(error) => {
                let _ = error.to_string();
                false
            }
        }
    });
    assert!(report.accepted > 0, "the fuzzer reached past the parser");
}

#[test]
fn simplenet_messages_decode_or_refuse_any_bytes() {
    let bincode = bincode::DefaultOptions::new().with_limit(64 * 1024);
    let hello = ClientHello {
        game: GameRef::new("bevygap-spaceships", "1"),
        client_build: "linux x86_64 abc123".into(),
    };
    let request = MatchRequest {
        region_pings: vec![RegionPing {
            region: "eu".into(),
            rtt_ms: 20,
        }],
        ..MatchRequest::default()
    };
    let seeds = [
        bincode.serialize(&hello).expect("hello"),
        bincode.serialize(&request).expect("request"),
        bincode.serialize(&ClientMsg::Cancel).expect("cancel"),
        serde_json::to_vec(&SeedResponse::Error(404, "unknown game".into())).expect("json"),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    fuzz("simplenet messages", &seeds, |bytes| {
        let hello = bincode.deserialize::<ClientHello>(bytes).is_ok();
        let request = bincode.deserialize::<MatchRequest>(bytes).is_ok();
        let cancel = bincode.deserialize::<ClientMsg>(bytes).is_ok();
        // And what a client decodes from the matchmaker.
        let server = bincode.deserialize::<ServerMsg>(bytes).is_ok()
            || bincode.deserialize::<MatchResult>(bytes).is_ok();
        let seed = serde_json::from_slice::<SeedResponse>(bytes).is_ok();
        hello || request || cancel || server || seed
    });
}
