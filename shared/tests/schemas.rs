//! Every KV record round-trips, and malformed, foreign or future records are typed errors.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use bevygap_shared::SchemaError;
use bevygap_shared::schema::{
    ActiveConnection, CertDigest, DeploymentLease, KvRecord, Location, MAX_RECORD_BYTES,
    Reservation, Transport, decode, encode,
};

fn lease() -> DeploymentLease {
    DeploymentLease {
        deployment_id: "local-1".into(),
        game: "spaceships".into(),
        game_version: "1".into(),
        public_addr: "[2001:db8::1]:6420".parse().unwrap(),
        fqdn: Some("abc.pr.edgegap.net".into()),
        transport: Transport::WebTransport,
        cert_digest: Some(CertDigest::from_bytes([7; 32])),
        capacity: 8,
        players: 3,
        location: Some(Location {
            region: "eu-west".into(),
            country: Some("DE".into()),
            latitude: Some(50.1),
            longitude: Some(8.6),
        }),
        started_at_ms: 1_700_000_000_000,
        heartbeat_at_ms: 1_700_000_003_000,
        accepting: true,
        backfill: None,
    }
}

fn reservation() -> Reservation {
    Reservation {
        reservation_id: "r-1".into(),
        deployment_id: "local-1".into(),
        client_id: u64::MAX,
        issued_at_ms: 10,
        expires_at_ms: 20,
    }
}

fn connection() -> ActiveConnection {
    ActiveConnection {
        deployment_id: "local-1".into(),
        client_id: 42,
        reservation_id: "r-1".into(),
        connected_at_ms: 15,
    }
}

fn round_trip<T: KvRecord + PartialEq + std::fmt::Debug>(record: T) {
    let bytes = encode(&record);
    assert_eq!(decode::<T>(&bytes).unwrap(), record);
}

#[test]
fn every_record_round_trips() {
    round_trip(lease());
    round_trip(reservation());
    round_trip(connection());
    let mut udp = lease();
    udp.transport = Transport::Udp;
    udp.cert_digest = None;
    udp.location = None;
    round_trip(udp);
}

#[test]
fn malformed_bytes_are_a_typed_error() {
    for bad in [
        &b""[..],
        b"not json",
        b"[1,2]",
        b"{\"format\":1,\"kind\":\"lease\"",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(
                decode::<DeploymentLease>(bad),
                Err(SchemaError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
    let missing_field = br#"{"format":1,"kind":"reservation","reservation_id":"r"}"#;
    assert!(matches!(
        decode::<Reservation>(missing_field),
        Err(SchemaError::Malformed { .. })
    ));
}

#[test]
fn records_without_a_format_are_refused() {
    let raw = br#"{"deployment_id":"d","client_id":1,"reservation_id":"r","connected_at_ms":1}"#;
    assert!(matches!(
        decode::<ActiveConnection>(raw),
        Err(SchemaError::MissingFormat { kind: "connection" })
    ));
}

#[test]
fn a_newer_format_is_told_apart_from_garbage() {
    let mut value: serde_json::Value = serde_json::from_slice(&encode(&reservation())).unwrap();
    value["format"] = 2.into();
    value["something_new"] = "x".into();
    let err = decode::<Reservation>(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade"));
}

#[test]
fn a_record_of_another_kind_is_refused() {
    let err = decode::<DeploymentLease>(&encode(&reservation())).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::WrongKind {
                expected: "lease",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn oversized_records_are_refused_before_parsing() {
    let big = vec![b' '; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        decode::<Reservation>(&big),
        Err(SchemaError::TooLarge { .. })
    ));
}

#[test]
fn field_domains_are_checked() {
    let mut bad = lease();
    bad.deployment_id = "a.b".into();
    assert!(matches!(
        decode::<DeploymentLease>(&encode(&bad)),
        Err(SchemaError::Invalid { .. })
    ));

    let mut bad = lease();
    bad.capacity = 0;
    assert!(matches!(
        decode::<DeploymentLease>(&encode(&bad)),
        Err(SchemaError::Invalid { .. })
    ));

    let mut bad = lease();
    bad.cert_digest = None;
    let err = decode::<DeploymentLease>(&encode(&bad)).unwrap_err();
    assert!(err.to_string().contains("certificate digest"), "{err}");

    let mut bad = reservation();
    bad.expires_at_ms = 1;
    assert!(matches!(
        decode::<Reservation>(&encode(&bad)),
        Err(SchemaError::Invalid { .. })
    ));

    let raw = String::from_utf8(encode(&lease()))
        .unwrap()
        .replace(&"07".repeat(32), "zz");
    assert!(matches!(
        decode::<DeploymentLease>(raw.as_bytes()),
        Err(SchemaError::Malformed { .. })
    ));
}

#[test]
fn reservations_know_when_they_expire() {
    let r = reservation();
    assert!(!r.is_expired(19));
    assert!(r.is_expired(20));
    assert_eq!(lease().free_seats(), 5);
}

#[test]
fn a_lease_backfill_round_trips_and_bad_seats_or_attributes_are_refused() {
    use bevygap_shared::schema::{BackfillSlot, LeaseBackfill};
    let backfill = |slots: &[(u32, u32)]| LeaseBackfill {
        queue: "2v2".into(),
        slots: slots
            .iter()
            .map(|(seat, team)| BackfillSlot {
                seat: *seat,
                team: *team,
            })
            .collect(),
        attributes: Default::default(),
    };
    let mut good = lease();
    good.backfill = Some(backfill(&[(1, 0), (2, 1)]));
    round_trip(good.clone());

    for slots in [&[(good.capacity, 0)][..], &[(1, 0), (1, 1)][..]] {
        let mut bad = good.clone();
        bad.backfill = Some(backfill(slots));
        let err = decode::<DeploymentLease>(&encode(&bad)).unwrap_err();
        assert!(
            matches!(err, SchemaError::Invalid { .. }) && err.to_string().contains("backfill seat"),
            "{err}"
        );
    }
    let mut long_name = good.clone();
    if let Some(b) = long_name.backfill.as_mut() {
        b.attributes.numbers.insert("x".repeat(65), 1.0);
    }
    let err = decode::<DeploymentLease>(&encode(&long_name)).unwrap_err();
    assert!(
        matches!(err, SchemaError::Invalid { .. }) && err.to_string().contains("backfill"),
        "{err}"
    );
}
