//! The rules of pooled queue tickets, on a headless core with manual time: the test plays NATS
//! (it answers the pool writes) and the other matchmaker (it writes that one's records).
//!
//! A ticket is matched only once stored in the pool; the owner of a match's oldest ticket forms
//! it and claims every ticket before it looks for a server; a lost claim dissolves the match and
//! gives back the claims it won; another matchmaker's player gets its sessions through its
//! record, and an own player matched elsewhere gets them from its record; the tickets of a
//! matchmaker that is not running are left alone.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use bevygap_matchmaker::PlacementConfig;
use bevygap_matchmaker::presence::LiveInstances;
use bevygap_matchmaker::queues::pool::{
    PoolChanged, PoolOp, PoolReply, PoolWrite, PoolWriteError, PoolWritten,
};
use bevygap_matchmaker::queues::{Match, PoolCorePlugin, QueueProfiles, TicketPool};
use bevygap_shared::protocol::channel::MatchResult;
use bevygap_shared::protocol::queue::QueueRequest;
use bevygap_shared::schema::{PoolState, PooledSession, PooledTicket};
use support::core_harness::*;

const ME: &str = "mm-00000000000000aa";
const OTHER: &str = "mm-00000000000000bb";
const MINE: &str = "t-0000000000000001";
const THEIRS: &str = "t-0000000000000002";

const DUEL: &str =
    "[[queue]]\nname = \"duel\"\nteams = 2\nteam_size = { min = 1, max = 1 }\nmax_wait_secs = 60\n";

fn duel() -> QueueRequest {
    QueueRequest {
        queue: "duel".into(),
        ..QueueRequest::default()
    }
}

/// A core with the pool, `live` the matchmakers running besides this one, and one empty
/// two-seat server.
fn harness(live: &[&str]) -> CoreHarness {
    let live: std::collections::HashSet<String> =
        live.iter().chain(&[ME]).map(|s| (*s).to_owned()).collect();
    let mut h = CoreHarness::with(
        PlacementConfig {
            queues: QueueProfiles::from_toml(DUEL).unwrap(),
            ..test_config()
        },
        |app| {
            app.add_plugins(PoolCorePlugin {
                instance: ME.into(),
            })
            .insert_resource(LiveInstances(live));
        },
    );
    h.lease(lease("dep-a", 2, 7000));
    h.tick();
    h
}

/// The pool writes since the last call.
fn writes(h: &mut CoreHarness) -> Vec<PoolWrite> {
    std::mem::take(&mut h.pool_writes)
}

/// Answers a write as NATS would, and runs a frame.
fn answer(h: &mut CoreHarness, write: &PoolWrite, result: Result<u64, PoolWriteError>) {
    h.send(PoolWritten {
        reply: write.reply.unwrap(),
        result,
    });
    h.tick();
}

/// An own ticket joins the duel and is stored in the pool at revision 1.
fn publish_mine(h: &mut CoreHarness) {
    h.request_queue(MINE, duel());
    h.tick();
    let published = writes(h);
    assert!(
        matches!(&published[..], [PoolWrite { key, op: PoolOp::Create(record), .. }]
            if key == MINE && record.owner == ME && record.state == PoolState::Waiting),
        "{published:?}"
    );
    assert_eq!(h.count::<Match>(), 0);
    answer(h, &published[0], Ok(1));
}

/// The other matchmaker's waiting ticket, joined `age_ms` before now (negative: after).
fn theirs(h: &CoreHarness, joined_ms: i64) -> PooledTicket {
    let wall = h.app.world().resource::<TicketPool>().wall_at_zero_ms;
    let now = h.app.world().resource::<bevy::prelude::Time>().elapsed();
    PooledTicket {
        ticket_id: THEIRS.into(),
        owner: OTHER.into(),
        game: GAME.into(),
        version: VERSION.into(),
        request: duel(),
        enqueued_at_ms: (wall as i64 + now.as_millis() as i64 + joined_ms) as u64,
        state: PoolState::Waiting,
    }
}

fn changed(h: &mut CoreHarness, revision: u64, record: PooledTicket) {
    h.send(PoolChanged {
        key: record.ticket_id.clone(),
        revision,
        record: Some(Box::new(record)),
    });
    h.tick();
}

/// The claims written for a match: (key, expected revision).
fn claims(writes: &[PoolWrite]) -> Vec<(String, u64)> {
    let mut claims: Vec<(String, u64)> = writes
        .iter()
        .filter_map(|w| match (&w.op, w.reply) {
            (PoolOp::Update { expected, record }, Some(PoolReply::Claimed { .. })) => {
                assert!(record.claimed_by(ME), "{record:?}");
                Some((w.key.clone(), *expected))
            }
            _ => None,
        })
        .collect();
    claims.sort();
    claims
}

#[test]
fn another_matchmakers_player_is_matched_with_ours_and_answered_through_its_record() {
    let mut h = harness(&[OTHER]);
    publish_mine(&mut h);
    // Their ticket joined after ours: ours is the oldest, so this matchmaker forms the match.
    let record = theirs(&h, 5);
    changed(&mut h, 2, record);
    let asked = writes(&mut h);
    assert_eq!(
        claims(&asked),
        [(MINE.to_owned(), 1), (THEIRS.to_owned(), 2)],
        "every ticket is claimed at the revision seen"
    );
    assert!(h.stored.is_empty(), "no seat before every claim is in");
    for (write, revision) in asked.iter().zip([3, 4]) {
        answer(&mut h, write, Ok(revision));
    }
    h.tick();
    assert_eq!(h.stored.len(), 2, "one seat per player once claimed");
    h.store_all();

    // Ours hears from this matchmaker; theirs gets its session in its record.
    let results = h.results();
    assert!(
        matches!(&results[..], [(id, MatchResult::Matched(m))] if id == MINE && m.sessions.len() == 1),
        "{results:?}"
    );
    let MatchResult::Matched(ours) = &results[0].1 else {
        unreachable!()
    };
    let answered = writes(&mut h);
    let theirs_answer = answered
        .iter()
        .find_map(|w| match &w.op {
            PoolOp::Answer(state) if w.key == THEIRS => Some(state.as_ref().clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("an answer for their ticket in {answered:?}"));
    let PoolState::Matched {
        team,
        teams,
        sessions,
    } = theirs_answer
    else {
        panic!("{theirs_answer:?}")
    };
    assert_eq!((teams, team + ours.team), (2, 1), "one player on each team");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].addr.port(), 7000);
    // Our answered ticket leaves the pool.
    assert!(
        answered
            .iter()
            .any(|w| w.key == MINE && matches!(w.op, PoolOp::Delete)),
        "{answered:?}"
    );
}

#[test]
fn a_match_whose_oldest_ticket_is_another_matchmakers_is_left_to_it() {
    let mut h = harness(&[OTHER]);
    let record = theirs(&h, -1000);
    changed(&mut h, 1, record);
    publish_mine(&mut h);
    h.tick();
    assert_eq!(h.count::<Match>(), 0);
    assert!(claims(&writes(&mut h)).is_empty());
    // The other claims ours for its match: ours hears a match was found, and waits.
    changed(
        &mut h,
        5,
        PooledTicket {
            ticket_id: MINE.into(),
            owner: ME.into(),
            game: GAME.into(),
            version: VERSION.into(),
            request: duel(),
            enqueued_at_ms: 0,
            state: PoolState::Claimed {
                by: OTHER.into(),
                match_id: "m-0000000000000001".into(),
            },
        },
    );
    assert!(h.results().is_empty());
}

#[test]
fn a_lost_claim_dissolves_the_match_and_gives_back_the_claim_it_won() {
    let mut h = harness(&[OTHER]);
    publish_mine(&mut h);
    let record = theirs(&h, 5);
    changed(&mut h, 2, record);
    let asked = writes(&mut h);
    assert_eq!(claims(&asked).len(), 2);
    for write in &asked {
        let result = match write.key.as_str() {
            MINE => Ok(3),
            // The other matchmaker claimed its own ticket first.
            _ => Err(PoolWriteError::Conflict(2)),
        };
        answer(&mut h, write, result);
    }
    assert_eq!(h.count::<Match>(), 0, "the match is dissolved");
    assert!(h.stored.is_empty(), "and took no seat");
    let released = writes(&mut h);
    assert!(
        matches!(&released[..], [PoolWrite { key, op: PoolOp::Update { expected: 3, record }, reply: Some(PoolReply::Released { .. }) }]
            if key == MINE && record.state == PoolState::Waiting),
        "our ticket waits again: {released:?}"
    );
    assert!(h.results().is_empty(), "nobody is answered");
}

#[test]
fn an_own_player_matched_elsewhere_gets_the_sessions_from_its_record() {
    let mut h = harness(&[OTHER]);
    publish_mine(&mut h);
    let session = bevygap_shared::protocol::channel::SessionInfo {
        ticket_id: MINE.into(),
        connect_token: vec![5; 2048],
        ip: [127, 0, 0, 1].into(),
        port: 7000,
        transport: bevygap_shared::schema::Transport::Udp,
        cert_digest: None,
    };
    let mut record = theirs(&h, 0);
    record.ticket_id = MINE.into();
    record.owner = ME.into();
    record.state = PoolState::Matched {
        team: 1,
        teams: 2,
        sessions: vec![PooledSession::from(&session)],
    };
    changed(&mut h, 9, record);
    let results = h.results();
    assert!(
        matches!(&results[..], [(id, MatchResult::Matched(m))]
            if id == MINE && m.team == 1 && m.sessions == [session.clone()]),
        "{results:?}"
    );
    assert!(
        writes(&mut h)
            .iter()
            .any(|w| w.key == MINE && matches!(w.op, PoolOp::Delete)),
        "the answered ticket leaves the pool"
    );
}

#[test]
fn the_tickets_of_a_matchmaker_that_is_not_running_are_left_alone() {
    let mut h = harness(&[]);
    publish_mine(&mut h);
    let record = theirs(&h, 5);
    changed(&mut h, 2, record);
    h.tick();
    assert_eq!(h.count::<Match>(), 0);
    assert!(claims(&writes(&mut h)).is_empty());
}

#[test]
fn a_late_write_reply_never_undoes_a_claim_the_watch_already_showed() {
    let mut h = harness(&[OTHER]);
    h.request_queue(MINE, duel());
    h.tick();
    let published = writes(&mut h);
    // The watch shows our ticket stored, then claimed by the other matchmaker, before the reply
    // to our own write arrives.
    let mut mine = theirs(&h, 0);
    mine.ticket_id = MINE.into();
    mine.owner = ME.into();
    changed(&mut h, 1, mine.clone());
    mine.state = PoolState::Claimed {
        by: OTHER.into(),
        match_id: "m-0000000000000001".into(),
    };
    changed(&mut h, 2, mine);
    answer(&mut h, &published[0], Ok(1));
    // A younger ticket of theirs arrives: ours is claimed, so no match here.
    let record = theirs(&h, 5);
    changed(&mut h, 3, record);
    h.tick();
    assert_eq!(h.count::<Match>(), 0);
    assert!(claims(&writes(&mut h)).is_empty(), "never claimed twice");
}
