//! Matchmaking queues on a headless core with manual time and a model of the seat ledger: a
//! match gets one server and a seat per player, each player's token carrying its team; tickets
//! are answered only when every seat of the match is stored; a seat lost to another matchmaker
//! sends the match looking again; bad queue requests are refused; tickets expire at their max
//! wait and hear their place in the queue meanwhile.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bevygap_matchmaker::PlacementConfig;
use bevygap_matchmaker::queues::{Match, QueueProfiles};
use bevygap_matchmaker::ticket::TicketUpdate;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::{MatchResult, MatchedSessions};
use bevygap_shared::protocol::queue::QueueRequest;
use support::core_harness::*;

const QUEUES: &str = r#"
[[queue]]
name = "2v2"
teams = 2
team_size = { min = 2, max = 2 }
max_wait_secs = 30

[[queue.rules]]
kind = "difference"
attribute = "skill"
max = 100
expand = [{ after_secs = 10, max = 1000 }]
"#;

fn harness() -> CoreHarness {
    CoreHarness::new(PlacementConfig {
        queues: QueueProfiles::from_toml(QUEUES).unwrap(),
        ..test_config()
    })
}

fn ask(skill: f64, party: &[&str]) -> QueueRequest {
    let mut request = QueueRequest {
        queue: "2v2".into(),
        party: party.iter().map(|p| (*p).to_owned()).collect(),
        ..QueueRequest::default()
    };
    request.attributes.numbers.insert("skill".into(), skill);
    request
}

/// The matched answers, by ticket.
fn matched(results: Vec<(String, MatchResult)>) -> HashMap<String, MatchedSessions> {
    results
        .into_iter()
        .map(|(id, result)| match result {
            MatchResult::Matched(m) => (id, m),
            other => panic!("{id}: {other:?}"),
        })
        .collect()
}

#[test]
fn a_party_of_two_and_two_solos_get_one_server_and_a_seat_each_with_their_teams() {
    let mut h = harness();
    h.request_queue("party", ask(1000.0, &["ann", "bob"]));
    h.request_queue("solo-1", ask(1050.0, &[]));
    h.tick();
    assert!(h.allocations.is_empty(), "no match yet, no server");
    h.request_queue("solo-2", ask(980.0, &[]));
    h.tick();
    // No empty server: the fleet starts one for the match.
    assert_eq!(h.allocations.len(), 1);
    assert_eq!(h.count::<Match>(), 1);
    h.finish_allocation(0, Ok("dep-m"));
    h.lease(lease("dep-m", 4, 7000));
    h.tick();
    h.tick();
    assert_eq!(h.stored.len(), 4, "one seat per player");
    assert!(
        h.results().is_empty(),
        "nobody is answered before every seat is stored"
    );
    h.store_all();
    let answers = matched(h.results());
    assert_eq!(answers.len(), 3);
    assert_eq!(
        answers["party"].sessions.len(),
        2,
        "a session per party member"
    );
    assert_eq!(answers["solo-1"].team, answers["solo-2"].team);
    assert_ne!(answers["party"].team, answers["solo-1"].team);
    let ports: Vec<u16> = answers
        .values()
        .flat_map(|m| m.sessions.iter().map(|s| s.port))
        .collect();
    assert_eq!(ports.len(), 4);
    assert!(ports.iter().all(|p| *p == 7000), "one server: {ports:?}");
    assert_eq!(h.count::<Match>(), 0, "the match is done");
    assert_eq!(h.seats("dep-m").unwrap().reserved, 4);
}

#[test]
fn a_match_takes_an_empty_ready_server_and_seat_requests_stay_off_it() {
    let mut h = harness();
    h.lease(lease("dep-a", 6, 7001));
    h.tick();
    for (i, skill) in [1000.0, 1010.0, 1020.0, 1030.0].iter().enumerate() {
        h.request_queue(&format!("q-{i}"), ask(*skill, &[]));
    }
    h.tick();
    // A seat request while the match takes its seats, and after: neither lands on its server,
    // though two of its six seats are free.
    h.request("seat-ticket");
    h.tick();
    assert_eq!(h.allocations.len(), 1, "the seat ticket asks for a server");
    let on_dep_a = h
        .stored
        .iter()
        .filter(|s| s.record.deployment_id == "dep-a")
        .count();
    assert_eq!(on_dep_a, 4, "the match took the empty server");
    h.store_all();
    let results = h.results();
    let matches = results
        .iter()
        .filter(|(_, r)| matches!(r, MatchResult::Matched(_)))
        .count();
    assert_eq!(matches, 4);
    h.tick();
    h.store_all();
    assert!(
        !h.results().iter().any(|(id, _)| id == "seat-ticket")
            && !results.iter().any(|(id, _)| id == "seat-ticket"),
        "the seat ticket waits for another server"
    );
    assert_eq!(h.seats("dep-a").unwrap().reserved, 4);
}

#[test]
fn a_seat_lost_to_another_matchmaker_frees_the_match_seats_and_it_looks_again() {
    let mut h = harness();
    h.lease(lease("dep-a", 4, 7002));
    h.tick();
    for (i, skill) in [1000.0, 1010.0, 1020.0, 1030.0].iter().enumerate() {
        h.request_queue(&format!("q-{i}"), ask(*skill, &[]));
    }
    h.tick();
    assert_eq!(h.stored.len(), 4);
    // Another matchmaker sells one of those seats first.
    let taken = h.stored[2].record.seat;
    assert!(h.sell_elsewhere("dep-a", taken, 77));
    h.store_all();
    assert!(h.results().is_empty(), "no partial answer");
    assert_eq!(h.count::<Match>(), 1);
    // The three seats it did get are freed; the server no longer has room for four.
    h.tick();
    assert_eq!(h.seats("dep-a").unwrap().reserved, 1);
    // It waits a moment for the server to come back, then asks the fleet for one with room;
    // a second server arrives and the match goes there.
    h.tick();
    assert!(h.allocations.is_empty(), "no new server at once");
    h.step(bevygap_matchmaker::queues::seating::SEAT_RACE_SETTLE);
    let asked = h.allocations.len();
    assert_eq!(asked, 1, "the fleet is asked for a server with room");
    h.finish_allocation(0, Ok("dep-b"));
    h.lease(lease("dep-b", 4, 7003));
    h.tick();
    h.tick();
    h.store_all();
    let answers = matched(h.results());
    assert_eq!(answers.len(), 4);
    assert!(
        answers
            .values()
            .all(|m| m.sessions.iter().all(|s| s.port == 7003))
    );
}

#[test]
fn requests_a_queue_cannot_take_are_refused_with_the_reason() {
    let mut h = harness();
    let mut unknown = ask(1000.0, &[]);
    unknown.queue = "ranked".into();
    h.request_queue("unknown", unknown);
    let mut no_skill = ask(0.0, &[]);
    no_skill.attributes.numbers.clear();
    h.request_queue("no-skill", no_skill);
    h.request_queue("trio", ask(1000.0, &["a", "b", "c"]));
    h.tick();
    let results: HashMap<String, MatchResult> = h.results().into_iter().collect();
    for (ticket, words) in [
        (
            "unknown",
            "no queue named \"ranked\"; this matchmaker runs 2v2",
        ),
        ("no-skill", "needs the numbers attribute \"skill\""),
        ("trio", "teams of at most 2 players; the party has 3"),
    ] {
        match &results[ticket] {
            MatchResult::Failed(error) => {
                assert_eq!(error.code, ErrorCode::BadRequest);
                assert!(error.message.contains(words), "{ticket}: {error}");
            }
            other => panic!("{ticket}: {other:?}"),
        }
    }
}

#[test]
fn a_waiting_ticket_hears_its_place_sees_its_window_widen_and_expires_at_its_max_wait() {
    let mut h = harness();
    h.request_queue("far-1", ask(0.0, &[]));
    h.request_queue("far-2", ask(5000.0, &[]));
    h.tick();
    let statuses: Vec<String> = h
        .updates()
        .into_iter()
        .filter_map(|(id, u)| match u {
            TicketUpdate::Status(s) if id == "far-2" => Some(s.text),
            _ => None,
        })
        .collect();
    assert!(
        statuses.iter().any(|s| s.contains("position 2")),
        "{statuses:?}"
    );
    h.wait(Duration::from_secs(11));
    let widened: Vec<String> = h
        .updates()
        .into_iter()
        .filter_map(|(_, u)| match u {
            TicketUpdate::Status(s) => Some(s.text),
            TicketUpdate::Result(_) => None,
        })
        .collect();
    assert!(
        widened.iter().any(|s| s.contains("widened 1x")),
        "{widened:?}"
    );
    h.wait(Duration::from_secs(20));
    let results: HashMap<String, MatchResult> = h.results().into_iter().collect();
    for ticket in ["far-1", "far-2"] {
        assert!(
            matches!(&results[ticket], MatchResult::Failed(e) if e.code == ErrorCode::Timeout
                && e.message.contains("no match in queue 2v2 within 30s")),
            "{ticket}: {:?}",
            results.get(ticket)
        );
    }
}

#[test]
fn the_summary_shows_each_queue_its_tickets_windows_and_matches_and_the_public_status_only_sizes() {
    use bevy::ecs::system::RunSystemOnce;
    use bevygap_matchmaker::inspect::SummaryParams;
    let mut h = harness();
    h.request_queue("far-1", ask(0.0, &[]));
    h.request_queue("far-2", ask(5000.0, &["ann", "bob"]));
    h.tick();
    h.wait(Duration::from_secs(11));
    let summary = h
        .app
        .world_mut()
        .run_system_once(|params: SummaryParams| params.summary())
        .unwrap();
    let queue = &summary["queues"][0];
    assert_eq!(queue["name"], "2v2");
    assert_eq!(queue["waiting_tickets"], 2);
    assert_eq!(queue["waiting_players"], 3);
    assert!(queue["oldest_wait_secs"].as_f64().unwrap() >= 11.0);
    let listed = queue["tickets"].as_array().unwrap();
    assert_eq!(listed[0]["ticket"], "far-1");
    assert_eq!(listed[0]["windows"]["skill"], 1000.0, "widened after 10 s");
    assert_eq!(listed[0]["widened"], 1);
    assert_eq!(summary["tickets"]["in_queue"], 2);

    let public = bevygap_matchmaker::status_page::public_status(summary);
    assert!(
        public["queues"][0].get("tickets").is_none(),
        "no ticket ids"
    );
    assert_eq!(public["queues"][0]["waiting_players"], 3);
    assert_eq!(public["matches_forming"], 0);

    // A match shows while it gets its server.
    for (i, skill) in [100.0, 110.0, 120.0, 130.0].iter().enumerate() {
        h.request_queue(&format!("near-{i}"), ask(*skill, &[]));
    }
    h.tick();
    let summary = h
        .app
        .world_mut()
        .run_system_once(|params: SummaryParams| params.summary())
        .unwrap();
    let matches = summary["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{summary}");
    assert_eq!(matches[0]["queue"], "2v2");
    assert_eq!(matches[0]["players"], 4);
    assert_eq!(summary["queues"][0]["matches"], 1);
}

fn with_backfill(
    mut lease: bevygap_shared::schema::DeploymentLease,
    slots: &[(u32, u32)],
    skill: f64,
) -> bevygap_shared::schema::DeploymentLease {
    let mut backfill = bevygap_shared::schema::LeaseBackfill {
        queue: "2v2".into(),
        slots: slots
            .iter()
            .map(|(seat, team)| bevygap_shared::schema::BackfillSlot {
                seat: *seat,
                team: *team,
            })
            .collect(),
        attributes: Default::default(),
    };
    backfill.attributes.numbers.insert("skill".into(), skill);
    lease.backfill = Some(backfill);
    lease
}

#[test]
fn a_running_servers_backfill_is_filled_on_the_seats_and_teams_it_named() {
    let mut h = harness();
    h.lease(with_backfill(
        lease("dep-b", 4, 7010),
        &[(1, 0), (3, 1)],
        1000.0,
    ));
    h.tick();
    h.request_queue("late-1", ask(1020.0, &[]));
    h.request_queue("late-2", ask(980.0, &[]));
    h.tick();
    h.tick();
    assert!(h.allocations.is_empty(), "no new server for a backfill");
    let mut seats: Vec<u32> = h.stored.iter().map(|s| s.record.seat).collect();
    seats.sort_unstable();
    assert_eq!(seats, vec![1, 3], "the seats the server named");
    h.store_all();
    let answers = matched(h.results());
    assert_eq!(answers.len(), 2);
    let mut teams: Vec<u32> = answers.values().map(|m| m.team).collect();
    teams.sort_unstable();
    assert_eq!(teams, vec![0, 1], "one player for each open team");
    assert!(
        answers
            .values()
            .all(|m| m.sessions.len() == 1 && m.sessions[0].port == 7010)
    );
}

#[test]
fn a_backfill_whose_seats_are_taken_elsewhere_is_left_alone_and_its_tickets_keep_waiting() {
    let mut h = harness();
    h.lease(with_backfill(lease("dep-c", 4, 7011), &[(2, 0)], 1000.0));
    h.tick();
    assert!(h.sell_elsewhere("dep-c", 2, 5));
    h.deliver();
    h.tick();
    h.request_queue("late", ask(1000.0, &[]));
    h.tick();
    h.tick();
    assert!(h.stored.is_empty(), "no seat taken");
    assert!(h.results().is_empty(), "the ticket keeps waiting");
    assert_eq!(h.count::<Match>(), 0);
}
