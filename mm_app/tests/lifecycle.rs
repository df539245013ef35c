//! The matchmaker's lifecycle rules, on a headless core with manual time.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevygap_matchmaker::deployment::DeploymentState;
use bevygap_matchmaker::fleet::FleetError;
use bevygap_matchmaker::messages::*;
use bevygap_matchmaker::reservation::SeatReservation;
use bevygap_matchmaker::ticket::{Ticket, TicketId};
use bevygap_shared::protocol::channel::{MatchResult, RegionPing};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bevygap_shared::token_data::TokenUserData;
use support::core_harness::*;

fn failure_code(result: &MatchResult) -> Option<ErrorCode> {
    match result {
        MatchResult::Failed(e) => Some(e.code),
        MatchResult::Ready(_) => None,
    }
}

#[test]
fn a_ticket_is_placed_on_a_ready_deployment_and_answered_after_its_reservation_is_stored() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 4, 6420)));
    h.request("t-1");
    h.tick();
    assert_eq!(h.stored.len(), 1, "one reservation to store");
    assert!(
        h.results().is_empty(),
        "no answer before the reservation is stored"
    );
    let record = h.stored[0].record.clone();
    assert_eq!(record.deployment_id, "dep-a");

    h.store_all();
    let results = h.results();
    let [(ticket, MatchResult::Ready(session))] = results.as_slice() else {
        panic!("expected one session, got {results:?}");
    };
    assert_eq!(ticket, "t-1");
    assert_eq!(session.server_addr().to_string(), "127.0.0.1:6420");
    assert_eq!(session.connect_token.len(), 2048);
    assert_eq!(h.count::<Ticket>(), 0, "answered tickets are gone");
    let seats = h.seats("dep-a").unwrap();
    assert_eq!(seats.reserved.len(), 1);
    assert!(seats.reserved.contains(&record.client_id));
}

#[test]
fn the_fullest_deployment_that_fits_is_preferred_then_the_nearest_region() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("empty", 4, 1)));
    let mut busy = lease("busy", 4, 2);
    busy.players = 2;
    h.send(LeaseUpdated(busy));
    h.request("t-1");
    h.tick();
    assert_eq!(h.stored.pop().unwrap().record.deployment_id, "busy");

    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease_in("far", 4, "us-east")));
    h.send(LeaseUpdated(lease_in("near", 4, "eu-west")));
    let pings = vec![
        RegionPing {
            region: "eu-west".into(),
            rtt_ms: 20,
        },
        RegionPing {
            region: "us-east".into(),
            rtt_ms: 90,
        },
    ];
    h.request_with("t-1", game(), pings);
    h.tick();
    assert_eq!(h.stored.pop().unwrap().record.deployment_id, "near");
}

#[test]
fn seats_are_counted_from_reservations_and_connections() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 2, 6420)));
    for t in ["t-1", "t-2", "t-3"] {
        h.request(t);
    }
    h.tick();
    assert_eq!(h.stored.len(), 2, "only two seats");
    let first_client = h.stored[0].record.client_id;
    h.store_all();
    assert_eq!(h.results().len(), 2);
    assert_eq!(
        h.allocations.len(),
        1,
        "the third ticket asks the fleet for a server"
    );

    // The first client connects: its reservation becomes a connection, no seat is freed.
    h.send(ConnectionOpened {
        deployment_id: "dep-a".into(),
        client_id: first_client,
    });
    h.tick();
    let seats = h.seats("dep-a").unwrap();
    assert_eq!((seats.connected.len(), seats.reserved.len()), (1, 1));
    assert_eq!(h.count::<SeatReservation>(), 1);
    assert!(h.stored.is_empty());

    // It leaves: the seat goes to the waiting ticket.
    h.send(ConnectionClosed {
        deployment_id: "dep-a".into(),
        client_id: first_client,
    });
    h.tick();
    assert_eq!(h.stored.len(), 1);
    assert_eq!(h.stored[0].record.deployment_id, "dep-a");
}

#[test]
fn an_unused_reservation_expires_and_frees_its_seat() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 1, 6420)));
    h.request("t-1");
    h.tick();
    h.store_all();
    h.request("t-2");
    h.tick();
    assert!(h.stored.is_empty(), "the only seat is reserved");

    h.step(Duration::from_secs(11));
    h.tick();
    assert_eq!(
        h.count::<SeatReservation>(),
        1,
        "t-2 holds the freed seat now"
    );
    assert_eq!(h.stored.len(), 1);
    assert_eq!(h.seats("dep-a").unwrap().reserved.len(), 1);
}

#[test]
fn tokens_name_the_deployment_and_reservation_in_authenticated_user_data() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 4, 6420)));
    h.request("t-1");
    h.tick();
    let record = h.stored[0].record.clone();
    h.store_all();
    let results = h.results();
    let MatchResult::Ready(session) = &results[0].1 else {
        panic!()
    };
    // The netcode token's public part is readable; its user data is checked by the server plugin
    // tests. Here: the record carries what the user data says.
    let expected = TokenUserData {
        deployment_id: "dep-a".into(),
        reservation_id: record.reservation_id.clone(),
        expires_at_ms: record.expires_at_ms,
    };
    assert!(expected.encode().is_ok());
    assert!(record.expires_at_ms > record.issued_at_ms);
    assert_eq!(&session.connect_token[..13], b"NETCODE 1.02\0");
}

#[test]
fn a_ticket_for_an_unknown_game_or_version_is_refused() {
    let mut h = CoreHarness::new(test_config());
    h.request_with("t-1", GameRef::new("other-game", "1"), vec![]);
    h.request_with("t-2", GameRef::new(GAME, "99"), vec![]);
    h.tick();
    let results = h.results();
    assert_eq!(results.len(), 2);
    for (_, r) in &results {
        assert_eq!(failure_code(r), Some(ErrorCode::UnknownGame));
    }
    assert_eq!(h.count::<Ticket>(), 0);
}

#[test]
fn without_a_free_seat_the_fleet_is_asked_and_the_ticket_waits_until_the_server_is_ready() {
    let mut h = CoreHarness::new(test_config());
    h.request("t-1");
    h.tick();
    assert_eq!(h.allocations.len(), 1);
    assert_eq!(h.allocations[0].request.game, game());
    let statuses: Vec<_> = h.updates();
    assert!(
        statuses
            .iter()
            .any(|(_, u)| format!("{u:?}").contains("Starting a game server"))
    );

    h.finish_allocation(0, Ok("dep-new"));
    assert!(matches!(
        h.deployment_state("dep-new"),
        Some(DeploymentState::Starting { .. })
    ));
    h.request("t-2");
    h.tick();
    assert_eq!(
        h.allocations.len(),
        1,
        "the starting server's seats cover both tickets"
    );

    h.send(LeaseUpdated(lease("dep-new", 4, 6500)));
    h.tick();
    assert_eq!(h.deployment_state("dep-new"), Some(DeploymentState::Ready));
    assert_eq!(h.stored.len(), 2);
    h.store_all();
    assert_eq!(h.results().len(), 2);
}

#[test]
fn a_fleet_without_capacity_fails_waiting_tickets_with_no_capacity() {
    let mut h = CoreHarness::new(test_config());
    h.request("t-1");
    h.tick();
    h.finish_allocation(0, Err(FleetError::NoCapacity("full".into())));
    let results = h.results();
    assert_eq!(results.len(), 1);
    assert_eq!(failure_code(&results[0].1), Some(ErrorCode::NoCapacity));
}

#[test]
fn a_ticket_times_out_when_no_server_becomes_ready() {
    let mut h = CoreHarness::new(test_config());
    h.request("t-1");
    h.tick();
    h.finish_allocation(0, Ok("dep-slow"));
    h.step(Duration::from_secs(29));
    assert!(h.results().is_empty());
    h.step(Duration::from_secs(2));
    let results = h.results();
    assert_eq!(failure_code(&results[0].1), Some(ErrorCode::Timeout));
    assert_eq!(h.count::<Ticket>(), 0);
}

#[test]
fn a_deployment_that_never_registers_is_stopped() {
    let mut h = CoreHarness::new(test_config());
    h.request("t-1");
    h.tick();
    h.finish_allocation(0, Ok("dep-broken"));
    h.step(Duration::from_secs(91));
    assert_eq!(h.stops.len(), 1);
    assert_eq!(h.stops[0].deployment_id, "dep-broken");
    assert_eq!(h.deployment_state("dep-broken"), None);
}

#[test]
fn an_empty_deployment_is_stopped_after_its_ttl_and_forgotten_when_its_lease_goes() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 4, 6420)));
    h.request("t-1");
    h.tick();
    let client = h.stored[0].record.client_id;
    h.store_all();
    h.send(ConnectionOpened {
        deployment_id: "dep-a".into(),
        client_id: client,
    });
    h.step(Duration::from_secs(120));
    assert!(
        h.stops.is_empty(),
        "a server with a player is never stopped"
    );

    h.send(ConnectionClosed {
        deployment_id: "dep-a".into(),
        client_id: client,
    });
    h.tick();
    h.step(Duration::from_secs(59));
    assert!(h.stops.is_empty());
    h.step(Duration::from_secs(2));
    assert_eq!(h.stops.len(), 1);
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Stopping));

    h.send(LeaseRemoved {
        deployment_id: "dep-a".into(),
    });
    h.tick();
    assert_eq!(h.deployment_state("dep-a"), None);
}

#[test]
fn a_cancelled_ticket_releases_its_seat() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 1, 6420)));
    h.request("t-1");
    h.tick();
    assert_eq!(h.seats("dep-a").unwrap().reserved.len(), 1);
    h.send(TicketCancelled {
        ticket_id: TicketId("t-1".into()),
    });
    h.tick();
    assert_eq!(h.seats("dep-a").unwrap().reserved.len(), 0);
    assert_eq!(h.count::<SeatReservation>(), 0);
    let results = h.results();
    assert_eq!(failure_code(&results[0].1), Some(ErrorCode::Cancelled));

    // The late storage acknowledgement changes nothing.
    h.store_all();
    assert!(h.results().is_empty());
}

#[test]
fn a_failed_reservation_write_frees_the_seat_and_fails_the_ticket() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 1, 6420)));
    h.request("t-1");
    h.tick();
    let store = h.stored.pop().unwrap();
    h.send(ReservationStored {
        reservation: store.reservation,
        result: Err("NATS down".into()),
    });
    h.tick();
    assert_eq!(failure_code(&h.results()[0].1), Some(ErrorCode::Internal));
    assert_eq!(h.seats("dep-a").unwrap().reserved.len(), 0);
}

#[test]
fn a_lapsed_lease_requeues_tickets_whose_seat_was_there() {
    let mut h = CoreHarness::new(test_config());
    h.send(LeaseUpdated(lease("dep-a", 1, 6420)));
    h.request("t-1");
    h.tick();
    h.stored.clear();
    h.send(LeaseRemoved {
        deployment_id: "dep-a".into(),
    });
    h.send(LeaseUpdated(lease("dep-b", 1, 6421)));
    h.tick();
    assert_eq!(h.stored.len(), 1);
    assert_eq!(h.stored[0].record.deployment_id, "dep-b");
}
