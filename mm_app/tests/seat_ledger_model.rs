//! Property: random interleavings of requests, seat writes, watch deliveries, clients joining
//! and leaving, seats lapsing, servers crashing and matchmakers restarting — two matchmaker cores
//! on one seat ledger — never sell a seat twice, answer every ticket, and leave each core's mirror
//! equal to the ledger once it has caught up.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bevygap_shared::protocol::channel::MatchResult;
use bevygap_shared::schema::SeatHolder;
use proptest::prelude::*;
use support::core_harness::*;
use support::ledger_model::LedgerModel;

/// What can happen next.
#[derive(Debug, Clone)]
enum Op {
    /// A client asks matchmaker `core`.
    Request { core: usize },
    /// Matchmaker `core` runs a frame.
    Tick { core: usize },
    /// Matchmaker `core`'s seat writes reach the ledger (its watch may lag).
    Write { core: usize },
    /// Matchmaker `core`'s watch catches up.
    Deliver { core: usize },
    /// The client on the `n`-th reserved seat connects.
    Connect { n: usize },
    /// The client on the `n`-th connected seat leaves.
    Leave { n: usize },
    /// Time passes for everyone (seats lapse).
    Wait { secs: u64 },
    /// A game server crashes: its lease goes and its seats are purged.
    Crash { server: usize },
    /// Matchmaker `core` is killed and started again (its clients lose their sockets).
    Restart { core: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let core = 0..2usize;
    prop_oneof![
        4 => core.clone().prop_map(|core| Op::Request { core }),
        4 => core.clone().prop_map(|core| Op::Tick { core }),
        3 => core.clone().prop_map(|core| Op::Write { core }),
        3 => core.clone().prop_map(|core| Op::Deliver { core }),
        2 => (0..4usize).prop_map(|n| Op::Connect { n }),
        1 => (0..4usize).prop_map(|n| Op::Leave { n }),
        1 => (1..20u64).prop_map(|secs| Op::Wait { secs }),
        1 => (0..2usize).prop_map(|server| Op::Crash { server }),
        1 => core.prop_map(|core| Op::Restart { core }),
    ]
}

const SERVERS: [(&str, u32); 2] = [("dep-a", 2), ("dep-b", 3)];

/// The two cores, their shared ledger, and what the test has seen.
struct World {
    cores: Vec<CoreHarness>,
    ledger: LedgerModel,
    /// Tickets asked of each live core, not yet answered.
    open: Vec<Vec<String>>,
    next_ticket: usize,
    /// Sessions given out, and seat writes the ledger accepted for a reservation.
    sessions: usize,
    accepted: usize,
    /// Servers that crashed (their leases are gone for good).
    crashed: Vec<&'static str>,
}

impl World {
    fn new() -> Self {
        let mut world = Self {
            cores: Vec::new(),
            ledger: LedgerModel::default(),
            open: vec![Vec::new(), Vec::new()],
            next_ticket: 0,
            sessions: 0,
            accepted: 0,
            crashed: Vec::new(),
        };
        for _ in 0..2 {
            let core = world.fresh_core();
            world.cores.push(core);
        }
        world
    }

    fn fresh_core(&mut self) -> CoreHarness {
        let mut core = CoreHarness::new(test_config());
        core.ledger = std::mem::take(&mut self.ledger);
        core.relist();
        for (id, capacity) in SERVERS {
            if self.alive(id) {
                core.lease(lease(id, capacity, 6420));
            }
        }
        core.tick();
        self.ledger = std::mem::take(&mut core.ledger);
        core
    }

    fn alive(&self, id: &str) -> bool {
        !self.crashed.contains(&id)
    }

    /// Runs `f` on core `i` with the shared ledger lent to it.
    fn with_core<R>(&mut self, i: usize, f: impl FnOnce(&mut CoreHarness) -> R) -> R {
        let core = &mut self.cores[i];
        core.ledger = std::mem::take(&mut self.ledger);
        let result = f(core);
        self.ledger = std::mem::take(&mut core.ledger);
        self.collect(i);
        result
    }

    /// Records the results core `i` sent.
    fn collect(&mut self, i: usize) {
        for (ticket, result) in self.cores[i].results() {
            self.open[i].retain(|t| *t != ticket);
            if matches!(result, MatchResult::Ready(_)) {
                self.sessions += 1;
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Request { core } => {
                let ticket = format!("t-{}", self.next_ticket);
                self.next_ticket += 1;
                self.open[core].push(ticket.clone());
                self.with_core(core, |h| h.request(&ticket));
            }
            Op::Tick { core } => self.with_core(core, |h| h.tick()),
            Op::Write { core } => {
                let before = self.ledger.log.len();
                self.with_core(core, |h| h.apply_writes());
                self.accepted += self.ledger.log[before..]
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.record.as_ref().map(|r| &r.holder),
                            Some(SeatHolder::Reserved { .. })
                        )
                    })
                    .count();
            }
            Op::Deliver { core } => self.with_core(core, |h| h.deliver()),
            Op::Connect { n } => {
                let reserved = self
                    .ledger
                    .keys_where(|h| matches!(h, SeatHolder::Reserved { .. }));
                if let Some((deployment, seat)) = reserved.get(n) {
                    self.ledger.connect(deployment, *seat);
                }
            }
            Op::Leave { n } => {
                let connected = self
                    .ledger
                    .keys_where(|h| matches!(h, SeatHolder::Connected { .. }));
                if let Some((deployment, seat)) = connected.get(n) {
                    self.ledger.free(deployment, *seat);
                }
            }
            Op::Wait { secs } => {
                for i in 0..self.cores.len() {
                    self.with_core(i, |h| h.wait(Duration::from_secs(secs)));
                }
            }
            Op::Crash { server } => {
                let (id, _) = SERVERS[server];
                self.crashed.push(id);
                self.ledger.purge(id);
                for i in 0..self.cores.len() {
                    self.with_core(i, |h| {
                        h.lease_gone(id);
                        h.tick();
                    });
                }
            }
            Op::Restart { core } => {
                // Its clients' sockets close: nobody is owed an answer by the dead process.
                self.open[core].clear();
                let fresh = self.fresh_core();
                self.cores[core] = fresh;
            }
        }
    }

    /// Lets everything settle: writes land, watches catch up, timeouts pass, and the watches
    /// catch up again.
    fn settle(&mut self) {
        self.quiesce();
        for wait in [31, 2] {
            for i in 0..self.cores.len() {
                self.with_core(i, |h| h.wait(Duration::from_secs(wait)));
            }
            self.quiesce();
        }
    }

    /// Rounds of writes, deliveries and frames until nothing is in flight and nothing new is
    /// written; then every watch catches up.
    fn quiesce(&mut self) {
        for _ in 0..50 {
            let before = self.ledger.log.len();
            for i in 0..self.cores.len() {
                self.apply(&Op::Write { core: i });
            }
            for i in 0..self.cores.len() {
                self.apply(&Op::Deliver { core: i });
                self.apply(&Op::Tick { core: i });
            }
            if pending(self) == 0 && self.ledger.log.len() == before {
                break;
            }
        }
    }
}

/// Seat writes still pending on a core would be answered later: count them out.
fn pending(world: &World) -> usize {
    world.cores.iter().map(|c| c.stored.len()).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn seats_are_sold_once_every_ticket_is_answered_and_mirrors_equal_the_ledger(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            // A key exists only below capacity: the ledger never holds more than it has.
            for (id, capacity) in SERVERS {
                prop_assert!(world.ledger.held(id) <= capacity as usize);
            }
            // A session is given only for a write the ledger accepted.
            prop_assert!(world.sessions <= world.accepted, "{} sessions for {} seats", world.sessions, world.accepted);
        }
        world.settle();
        prop_assert_eq!(pending(&world), 0);
        for (i, open) in world.open.iter().enumerate() {
            prop_assert!(open.is_empty(), "core {} left tickets unanswered: {:?}", i, open);
        }
        // After a re-list, each core's mirror equals the ledger for every server it knows.
        for i in 0..world.cores.len() {
            world.with_core(i, |h| h.reconcile());
        }
        prop_assert_eq!(pending(&world), 0);
        for core in &mut world.cores {
            for (id, _) in SERVERS {
                let Some(seats) = core.seats(id) else { continue };
                let mirrored: HashMap<u32, u64> =
                    seats.held_seats().map(|(seat, held)| (seat, held.revision)).collect();
                let ledger: HashMap<u32, u64> = world
                    .ledger
                    .keys
                    .iter()
                    .filter(|((d, _), k)| d == id && k.record.is_some())
                    .map(|((_, seat), k)| (*seat, k.revision))
                    .collect();
                prop_assert_eq!(mirrored, ledger, "mirror of {} differs", id);
            }
        }
    }
}

#[test]
fn two_cores_racing_for_one_seat_give_one_session_and_answer_both() {
    let mut world = World::new();
    // Six tickets, three per core, for the five seats of dep-a and dep-b.
    for op in [
        Op::Request { core: 0 },
        Op::Request { core: 0 },
        Op::Request { core: 0 },
        Op::Request { core: 1 },
        Op::Request { core: 1 },
        Op::Request { core: 1 },
        Op::Tick { core: 0 },
        Op::Tick { core: 1 },
        Op::Write { core: 0 },
        Op::Write { core: 1 },
        Op::Tick { core: 0 },
        Op::Tick { core: 1 },
    ] {
        world.apply(&op);
    }
    world.settle();
    // Five seats in all: five sessions before any lapses (a sixth once the first lapse).
    assert!(world.sessions >= 5, "{} sessions", world.sessions);
    assert_eq!(
        world.sessions, world.accepted,
        "a session per seat the ledger sold"
    );
    assert!(world.open.iter().all(Vec::is_empty));
}
