//! The client conversation: the seed-compatible JSON of `/matchmaker/ws` and the simplenet channel.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use bevygap_shared::ProtocolError;
use bevygap_shared::protocol::channel::{
    ClientHello, ClientMsg, MatchError, MatchMode, MatchRequest, MatchResult, MatchStage,
    MatchStatus, MatchedSessions, ServerMsg, SessionInfo,
};
use bevygap_shared::protocol::seed_json::{SeedResponse, parse_request};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bevygap_shared::schema::{CertDigest, Transport};

fn session() -> SessionInfo {
    SessionInfo {
        ticket_id: "t-1".into(),
        connect_token: b"NETCODE 1.02".to_vec(),
        ip: "127.0.0.1".parse().unwrap(),
        port: 6420,
        transport: Transport::WebTransport,
        cert_digest: Some("ab".repeat(32).parse::<CertDigest>().unwrap()),
    }
}

#[test]
fn seed_messages_have_the_seed_wire_format() {
    assert_eq!(SeedResponse::Acknowledged.to_json(), r#""Acknowledged""#);
    assert_eq!(
        SeedResponse::SessionRequestAccepted("t-1".into()).to_json(),
        r#"{"SessionRequestAccepted":"t-1"}"#
    );
    assert_eq!(
        SeedResponse::ProgressReport("Starting".into()).to_json(),
        r#"{"ProgressReport":"Starting"}"#
    );
    assert_eq!(
        SeedResponse::error(ErrorCode::UnknownGame, "no such game").to_json(),
        r#"{"Error":[404,"no such game"]}"#
    );
    let ready = SeedResponse::ready(&session()).to_json();
    assert_eq!(
        ready,
        format!(
            r#"{{"SessionReady":{{"token":"TkVUQ09ERSAxLjAy","ip":"127.0.0.1","port":6420,"cert_digest":"{}"}}}}"#,
            "ab".repeat(32)
        )
    );
    assert!(SeedResponse::parse(&ready).unwrap().is_final());
    assert!(!SeedResponse::Acknowledged.is_final());
}

#[test]
fn seed_request_parses_and_validates() {
    let req = parse_request(r#"{"game":"bevygap-spaceships","version":"1"}"#, 1024).unwrap();
    assert_eq!(req.game, GameRef::new("bevygap-spaceships", "1"));
    assert_eq!(req.player_token, None, "the seed's request, unchanged");
    let req = parse_request(
        r#"{"game":"bevygap-spaceships","version":"1","player_token":"eyJhbGciOi.x.y"}"#,
        1024,
    )
    .unwrap();
    assert_eq!(req.player_token.as_deref(), Some("eyJhbGciOi.x.y"));
}

#[test]
fn malformed_seed_requests_are_typed_errors() {
    for bad in [
        "",
        "{",
        "[]",
        r#"{"game":"x"}"#,
        r#"{"game":1,"version":"1"}"#,
        "null",
    ] {
        assert!(
            matches!(parse_request(bad, 1024), Err(ProtocolError::Malformed(_))),
            "{bad:?}"
        );
    }
    for bad in [
        r#"{"game":"","version":"1"}"#,
        r#"{"game":"a b","version":"1"}"#,
        r#"{"game":"x","version":"\n"}"#,
    ] {
        assert!(
            matches!(
                parse_request(bad, 1024),
                Err(ProtocolError::InvalidField { .. })
            ),
            "{bad:?}"
        );
    }
    let long = format!(r#"{{"game":"{}","version":"1"}}"#, "x".repeat(65));
    assert!(matches!(
        parse_request(&long, 1024),
        Err(ProtocolError::InvalidField { field: "game", .. })
    ));
    let big = format!(r#"{{"game":"{}","version":"1"}}"#, "x".repeat(2000));
    assert!(matches!(
        parse_request(&big, 1024),
        Err(ProtocolError::TooLarge { max: 1024, .. })
    ));
}

#[test]
fn error_codes_map_to_numbers_and_back() {
    for code in [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownGame,
        ErrorCode::Timeout,
        ErrorCode::Cancelled,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::FleetError,
        ErrorCode::NoCapacity,
    ] {
        assert_eq!(ErrorCode::from_code(code.code()), Some(code));
    }
    assert_eq!(ErrorCode::from_code(200), None);
    assert!(ErrorCode::NoCapacity.is_retryable());
    assert!(!ErrorCode::UnknownGame.is_retryable());
}

#[test]
fn channel_messages_round_trip() {
    fn rt<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
    }
    rt(ClientHello {
        game: GameRef::new("g", "1"),
        client_build: "native".into(),
    });
    rt(MatchRequest::default());
    rt(ClientMsg::Cancel);
    rt(ServerMsg::Status(MatchStatus {
        ticket_id: "t".into(),
        stage: MatchStage::Allocating,
        text: "Starting a server".into(),
    }));
    rt(MatchResult::Ready(session()));
    rt(MatchResult::Failed(MatchError::new(
        ErrorCode::Timeout,
        "too slow",
    )));
    assert_eq!(session().server_addr().to_string(), "127.0.0.1:6420");
}

#[test]
fn a_queue_request_and_a_match_cross_the_simplenet_channel_in_bincode() {
    use bincode::Options;
    fn rt<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        // The options of the matchmaker's /ws endpoint and of bevy_simplenet.
        let options = bincode::DefaultOptions::new();
        let bytes = options.serialize(&v).unwrap();
        assert_eq!(options.deserialize::<T>(&bytes).unwrap(), v);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
    }
    let mut queue = bevygap_shared::protocol::queue::QueueRequest {
        queue: "2v2".into(),
        party: vec!["ann".into(), "bob".into()],
        ..Default::default()
    };
    queue.attributes.numbers.insert("skill".into(), 1234.5);
    queue
        .attributes
        .strings
        .insert("mode".into(), "ranked".into());
    queue
        .attributes
        .sets
        .insert("languages".into(), ["en".to_owned()].into());
    queue.attributes.latencies_ms.insert("eu".into(), 31);
    rt(MatchRequest {
        mode: MatchMode::Queue(queue.clone()),
        ..MatchRequest::default()
    });
    rt(MatchRequest {
        mode: MatchMode::Queue(bevygap_shared::protocol::queue::QueueRequest {
            queue: "solo".into(),
            ..Default::default()
        }),
        ..MatchRequest::default()
    });
    rt(MatchResult::Matched(MatchedSessions {
        team: 1,
        teams: 2,
        sessions: vec![session(), session()],
    }));
}

#[test]
fn a_seed_request_names_a_queue_for_its_attributes_and_party() {
    let queued = parse_request(
        r#"{"game":"g","version":"1","queue":"2v2","party":["ann","bob"],"attributes":{"numbers":{"skill":1200}}}"#,
        4096,
    )
    .unwrap();
    let queue = queued.queue_request().unwrap();
    assert_eq!((queue.queue.as_str(), queue.players()), ("2v2", 2));
    assert!(
        parse_request(r#"{"game":"g","version":"1"}"#, 4096)
            .unwrap()
            .queue_request()
            .is_none()
    );
    for bad in [
        r#"{"game":"g","version":"1","party":["ann"]}"#,
        r#"{"game":"g","version":"1","attributes":{"numbers":{"skill":1}}}"#,
        r#"{"game":"g","version":"1","queue":""}"#,
        r#"{"game":"g","version":"1","queue":"q","attributes":{"colour":{}}}"#,
    ] {
        assert!(
            matches!(
                parse_request(bad, 4096),
                Err(ProtocolError::InvalidField { .. } | ProtocolError::Malformed(_))
            ),
            "{bad}"
        );
    }
}
