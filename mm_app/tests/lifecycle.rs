//! The matchmaker's rules, on a headless core with manual time and a model of the seat ledger.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevygap_matchmaker::deployment::DeploymentState;
use bevygap_matchmaker::fleet::FleetError;
use bevygap_matchmaker::messages::*;
use bevygap_matchmaker::seats::SeatReservation;
use bevygap_matchmaker::ticket::{Ticket, TicketId};
use bevygap_shared::protocol::channel::{MatchResult, RegionPing};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bevygap_shared::schema::SeatHolder;
use bevygap_shared::token_data::TokenUserData;
use support::core_harness::*;

fn failure_code(result: &MatchResult) -> Option<ErrorCode> {
    match result {
        MatchResult::Failed(e) => Some(e.code),
        MatchResult::Ready(_) | MatchResult::Matched(_) => None,
    }
}

#[test]
fn a_ticket_is_placed_on_a_ready_deployment_and_answered_after_its_reservation_is_stored() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 4, 6420));
    h.request("t-1");
    h.tick();
    assert_eq!(h.stored.len(), 1, "one reservation to store");
    assert!(
        h.results().is_empty(),
        "no answer before the reservation is stored"
    );
    let record = h.pending_record(0);
    assert_eq!(record.deployment_id, "dep-a");
    assert_eq!(h.stored[0].expected_revision, 0, "a seat never written");

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
    assert_eq!(seats.reserved, 1);
    assert_eq!(
        seats.held(record.seat).map(|s| s.holder),
        Some(bevygap_matchmaker::deployment::Holder::Reserved {
            client_id: record.client_id().unwrap()
        })
    );
    assert_eq!(h.ledger.held("dep-a"), 1, "the ledger holds the seat");
}

#[test]
fn the_fullest_deployment_that_fits_is_preferred_then_the_nearest_region() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("empty", 4, 1));
    let mut busy = lease("busy", 4, 2);
    busy.players = 2;
    h.lease(busy);
    h.request("t-1");
    h.tick();
    assert_eq!(h.stored.pop().unwrap().record.deployment_id, "busy");

    let mut h = CoreHarness::new(test_config());
    h.lease(lease_in("far", 4, "us-east"));
    h.lease(lease_in("near", 4, "eu-west"));
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
fn seats_are_counted_from_the_ledger_reserved_then_connected() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 2, 6420));
    for t in ["t-1", "t-2", "t-3"] {
        h.request(t);
    }
    h.tick();
    assert_eq!(h.stored.len(), 2, "only two seats");
    let first = h.pending_record(0);
    assert_ne!(first.seat, h.pending_record(1).seat, "two different seats");
    h.store_all();
    assert_eq!(h.results().len(), 2);
    assert_eq!(
        h.allocations.len(),
        1,
        "the third ticket asks the fleet for a server"
    );

    // The first client connects: its seat goes from reserved to connected, none is freed.
    h.connect(&first);
    let seats = h.seats("dep-a").unwrap();
    assert_eq!((seats.connected, seats.reserved), (1, 1));
    assert!(h.stored.is_empty());

    // It leaves: the seat goes to the waiting ticket, at the revision the leave wrote.
    h.disconnect(&first);
    assert_eq!(h.stored.len(), 1);
    assert_eq!(h.stored[0].record.deployment_id, "dep-a");
    assert_eq!(h.stored[0].record.seat, first.seat);
    assert_eq!(
        h.stored[0].expected_revision,
        h.ledger.current("dep-a", first.seat).0
    );
}

#[test]
fn an_unused_reservation_lapses_in_the_ledger_and_its_seat_is_sold_again() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 1, 6420));
    h.request("t-1");
    h.tick();
    h.store_all();
    h.request("t-2");
    h.tick();
    assert!(h.stored.is_empty(), "the only seat is reserved");

    // The token expires after 10 s; the seat lapses 5 s later (grace), not before.
    h.wait(Duration::from_secs(14));
    assert!(h.stored.is_empty(), "still held during the grace");
    h.wait(Duration::from_secs(2));
    assert_eq!(h.stored.len(), 1, "t-2 takes the freed seat");
    h.store_all();
    assert_eq!(h.seats("dep-a").unwrap().reserved, 1);
}

#[test]
fn a_seat_lost_to_another_matchmaker_is_placed_again_on_fresh_state_not_failed() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 2, 6420));
    h.request("t-1");
    h.tick();
    let mine = h.pending_record(0);
    // Another matchmaker takes the same seat first (its write lands before ours).
    let mut theirs = h.stored[0].clone();
    theirs.record.holder = SeatHolder::Reserved {
        reservation_id: "r-theirs".into(),
        client_id: 77,
        issued_at_ms: 0,
        expires_at_ms: 10_000,
    };
    assert!(h.ledger.store(&theirs, 0).result.is_ok());

    h.store_all();
    assert!(h.results().is_empty(), "no error for a lost race");
    assert_eq!(
        h.app
            .world()
            .resource::<bevygap_matchmaker::seats::LedgerStats>()
            .conflicts,
        1
    );
    // Next frame: the ticket goes to the other seat.
    assert_eq!(h.stored.len(), 1);
    assert_ne!(h.stored[0].record.seat, mine.seat);
    h.store_all();
    assert!(matches!(h.results()[0].1, MatchResult::Ready(_)));
    assert_eq!(h.ledger.held("dep-a"), 2);
}

#[test]
fn tokens_name_the_deployment_and_reservation_in_authenticated_user_data() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 4, 6420));
    h.request("t-1");
    h.tick();
    let record = h.pending_record(0).reservation().unwrap();
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
        team: None,
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
fn no_answer_is_dropped_when_thousands_arrive_in_one_frame() {
    // More answers in one frame than any fixed buffer of the endpoints held before (8,192).
    let mut h = CoreHarness::new(test_config());
    for i in 0..10_000 {
        h.request_with(&format!("t-{i}"), GameRef::new("other-game", "1"), vec![]);
    }
    h.tick();
    assert_eq!(h.results().len(), 10_000, "every client gets its answer");
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

    h.lease(lease("dep-new", 4, 6500));
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
    h.lease(lease("dep-a", 4, 6420));
    h.request("t-1");
    h.tick();
    let record = h.pending_record(0);
    h.store_all();
    h.connect(&record);
    h.wait(Duration::from_secs(120));
    assert!(
        h.closes.is_empty() && h.stops.is_empty(),
        "a server with a player is never stopped"
    );

    h.disconnect(&record);
    h.step(Duration::from_secs(59));
    assert!(h.closes.is_empty());
    h.step(Duration::from_secs(2));
    assert_eq!(h.closes.len(), 1, "its seats are closed first");
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Closing));
    assert_eq!(h.closes[0].seats.len(), 4);
    h.close_all();
    assert_eq!(h.stops.len(), 1);
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Stopping));
    assert_eq!(h.ledger.held("dep-a"), 4, "every seat closed");

    h.lease_gone("dep-a");
    h.tick();
    assert_eq!(h.deployment_state("dep-a"), None);
    assert_eq!(h.purges.len(), 1, "its seats are purged from KV");
}

#[test]
fn a_stop_loses_to_a_seat_sold_meanwhile_and_the_server_stays() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 2, 6420));
    h.tick();
    h.step(Duration::from_secs(61));
    assert_eq!(h.closes.len(), 1);
    // Another matchmaker sells seat 1 before the close reaches it.
    assert!(h.sell_elsewhere("dep-a", 1, 5));
    h.close_all();
    assert!(h.stops.is_empty(), "no stop under a sold seat");
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Ready));
    assert_eq!(h.ledger.held("dep-a"), 1, "the closed seat was given back");
}

#[test]
fn regression_a_stop_that_fails_leaves_the_server_serving_not_stopping_forever() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 2, 6420));
    h.tick();
    h.step(Duration::from_secs(61));
    h.close_all();
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Stopping));
    h.send(StopFailed {
        deployment_id: "dep-a".into(),
        reason: "provider down".into(),
    });
    h.tick();
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Ready));
    // Its closed seats lapse, and players are placed there again.
    h.wait(Duration::from_secs(121));
    h.request("t-1");
    h.tick();
    assert_eq!(h.stored.len(), 1, "the server takes players again");
}

#[test]
fn regression_a_fleet_that_never_stops_servers_keeps_empty_ones_ready() {
    let mut config = test_config();
    config.scale_to_zero = false;
    let mut h = CoreHarness::new(config);
    h.lease(lease("static-1", 2, 6420));
    h.step(Duration::from_secs(600));
    h.tick();
    assert!(h.closes.is_empty() && h.stops.is_empty());
    assert_eq!(h.deployment_state("static-1"), Some(DeploymentState::Ready));
    h.request("t-1");
    h.tick();
    assert_eq!(h.stored.len(), 1);
}

#[test]
fn a_cancelled_ticket_gives_its_seat_back_and_wakes_placement() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 1, 6420));
    h.request("t-1");
    h.request("t-2");
    h.tick();
    assert_eq!(h.seats("dep-a").unwrap().selling, 1);
    h.send(TicketCancelled {
        ticket_id: TicketId("t-1".into()),
    });
    h.tick();
    let results = h.results();
    assert_eq!(failure_code(&results[0].1), Some(ErrorCode::Cancelled));

    // Its seat write wins after all: the seat is freed at once, and t-2 gets it without waiting
    // for a heartbeat.
    h.store_all();
    assert_eq!(
        h.ledger.held("dep-a"),
        0,
        "the cancelled ticket's seat is freed"
    );
    h.tick();
    assert_eq!(h.stored.len(), 1, "t-2 is placed on the freed seat");
    h.store_all();
    assert!(matches!(h.results()[0].1, MatchResult::Ready(_)));
}

#[test]
fn a_seat_write_nats_refused_is_retried_shortly_and_fails_only_at_the_deadline() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 1, 6420));
    h.request("t-1");
    h.tick();
    let fail = |h: &mut CoreHarness| {
        let store = h.stored.pop().unwrap();
        h.send(ReservationStored {
            reservation: store.reservation,
            result: Err(SeatStoreError::Unavailable("NATS down".into())),
        });
        h.tick();
    };
    fail(&mut h);
    assert!(
        h.results().is_empty(),
        "no error while the deadline allows a retry"
    );
    assert_eq!(
        h.seats("dep-a").unwrap().free(0),
        1,
        "the seat is free in the mirror"
    );
    assert!(
        h.stored.is_empty() && h.allocations.is_empty(),
        "it waits, and asks no fleet"
    );
    h.step(Duration::from_millis(300));
    h.tick();
    assert_eq!(h.stored.len(), 1, "placed again after the pause");
    // Still refused until the deadline: then the client is told to try again.
    h.step(Duration::from_millis(29_600));
    fail(&mut h);
    assert_eq!(failure_code(&h.results()[0].1), Some(ErrorCode::Internal));
}

#[test]
fn a_lapsed_lease_requeues_tickets_whose_seat_was_there() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 1, 6420));
    h.request("t-1");
    h.tick();
    h.stored.clear();
    h.lease_gone("dep-a");
    h.lease(lease("dep-b", 1, 6421));
    h.tick();
    assert_eq!(h.stored.len(), 1);
    assert_eq!(h.stored[0].record.deployment_id, "dep-b");
    assert_eq!(h.count::<SeatReservation>(), 1);
}

#[test]
fn regression_a_lease_removed_and_put_again_in_one_frame_keeps_the_server() {
    let mut h = CoreHarness::new(test_config());
    h.lease(lease("dep-a", 2, 6420));
    h.tick();
    h.lease_gone("dep-a");
    h.lease(lease("dep-a", 2, 6420));
    h.tick();
    assert_eq!(h.deployment_state("dep-a"), Some(DeploymentState::Ready));
}

#[test]
fn regression_seats_that_arrive_before_their_lease_are_kept() {
    let mut h = CoreHarness::new(test_config());
    // Another matchmaker sold a seat on dep-a; this one sees the seat before the lease.
    assert!(h.sell_elsewhere("dep-a", 0, 5));
    h.deliver();
    h.tick();
    h.lease(lease("dep-a", 1, 6420));
    h.request("t-1");
    h.tick();
    assert!(h.stored.is_empty(), "its only seat is sold already");
    assert_eq!(h.seats("dep-a").unwrap().reserved, 1);
}

#[test]
fn nothing_is_sold_until_the_mirrors_are_listed() {
    let mut h = CoreHarness::new(test_config());
    h.sync(false);
    h.lease(lease("dep-a", 1, 6420));
    h.request("t-1");
    h.tick();
    assert!(h.stored.is_empty(), "a re-listing mirror sells nothing");
    h.sync(true);
    assert_eq!(h.stored.len(), 1);
}

#[test]
fn regression_allocations_failing_in_one_frame_fail_the_waiting_tickets_instead_of_retrying_forever()
 {
    let mut config = test_config();
    config.expected_capacity = 1;
    let mut h = CoreHarness::new(config);
    h.request("t-1");
    h.request("t-2");
    h.tick();
    assert_eq!(h.allocations.len(), 2);
    for i in 0..2 {
        let deployment = h.allocations[i].deployment;
        h.send(AllocationFinished {
            deployment,
            result: Err(FleetError::NoCapacity("full".into())),
        });
    }
    h.tick();
    let results = h.results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(_, r)| failure_code(r) == Some(ErrorCode::NoCapacity))
    );
    h.tick();
    assert_eq!(
        h.allocations.len(),
        2,
        "no new allocation for answered tickets"
    );
}
