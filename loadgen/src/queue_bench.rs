//! Matchmaking-queue benchmarks on an in-process matchmaker core with simulated time: tickets
//! join a 2v2 queue (skill within 100, widening to 300 after 5 s; one ticket in five a party of
//! two) at a steady rate while `waiting` tickets that never match sit in the same queue. Each
//! frame is one `update` of the real core (the matching system with its 1 ms budget, the match
//! entities, the seating of matches); matched tickets are then taken away, as if seated.
//!
//! Reported: frame time (wall clock), matched tickets per second of frame time (the queue's
//! capacity on this machine), and time to match in simulated time (what players wait).

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevygap_matchmaker::messages::{AllocateDeployment, LedgerSync, MirrorOf, TicketRequested};
use bevygap_matchmaker::queues::{Match, QueueProfiles, QueueTicket};
use bevygap_matchmaker::ticket::{TicketId, TicketResponder, TicketState};
use bevygap_matchmaker::{MatchmakerCorePlugin, PlacementConfig, PrivateKey, TokenConfig};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::queue::QueueRequest;
use rand::{Rng, SeedableRng};

use crate::env::{GAME, VERSION};
use crate::report::Percentiles;

/// The queue the benchmark runs.
pub const QUEUE: &str = r#"
[[queue]]
name = "bench-2v2"
teams = 2
team_size = { min = 2, max = 2 }
max_wait_secs = 3000

[[queue.rules]]
kind = "difference"
attribute = "skill"
max = 100
expand = [{ after_secs = 5, max = 300 }]
"#;

/// One simulated frame.
const FRAME: Duration = Duration::from_millis(16);

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct QueueBenchConfig {
    /// Tickets that wait all along (skills far apart), besides the stream.
    pub waiting: usize,
    /// Tickets joining per simulated second (skills 0 to 1000).
    pub arrivals_per_sec: f64,
    /// Simulated seconds to run.
    pub secs: f64,
}

/// What it measured.
#[derive(Debug, Clone, Default)]
pub struct QueueBenchReport {
    /// Frame time, ms (wall clock).
    pub frames: Percentiles,
    /// Tickets matched.
    pub matched: u64,
    /// Matched tickets per second of frame time.
    pub matched_per_sec: f64,
    /// Time from joining to the match, ms of simulated time.
    pub time_to_match: Percentiles,
    /// Tickets waiting when the run ended (the `waiting` ones included).
    pub waiting_at_end: usize,
}

/// A headless matchmaker core for benchmarks: manual time (returned, to advance), its KV mirrors
/// already listed so placement and matching run every frame, and optionally the single-threaded
/// executor the matchmaker's runner uses.
pub fn bench_core(queues: QueueProfiles, single_threaded: bool) -> (App, Instant) {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(MatchmakerCorePlugin {
            placement: PlacementConfig {
                app_name: GAME.into(),
                app_versions: vec![VERSION.into()],
                ticket_timeout: Duration::from_secs(3600),
                queues,
                ..PlacementConfig::default()
            },
            tokens: TokenConfig {
                protocol_id: 1,
                private_key: PrivateKey::from_bytes([7; 32]),
                expire_seconds: 15,
                timeout_seconds: 5,
            },
        });
    let now = Instant::now();
    app.insert_resource(TimeUpdateStrategy::ManualInstant(now));
    app.finish();
    app.cleanup();
    if single_threaded {
        bevygap_matchmaker::bridge::run_schedules_single_threaded(&mut app);
    }
    for mirror in [MirrorOf::Leases, MirrorOf::Seats] {
        app.world_mut().write_message(LedgerSync {
            mirror,
            synced: true,
        });
    }
    (app, now)
}

/// Runs the queue at a steady arrival rate beside `waiting` tickets that never match.
pub fn run_queue(config: QueueBenchConfig) -> anyhow::Result<QueueBenchReport> {
    let (mut app, mut now) = bench_core(QueueProfiles::from_toml(QUEUE)?, true);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut next = 0u64;
    let mut ask = |app: &mut App, skill: f64, party: usize| {
        next += 1;
        let mut request = QueueRequest {
            queue: "bench-2v2".into(),
            party: (0..party).map(|p| format!("p{p}")).collect(),
            ..QueueRequest::default()
        };
        request.attributes.numbers.insert("skill".into(), skill);
        app.world_mut().write_message(TicketRequested {
            ticket_id: TicketId(format!("t-{next}")),
            game: GameRef::new(GAME, VERSION),
            client_ip: None,
            region_pings: Vec::new(),
            queue: Some(request),
            responder: TicketResponder(tx.clone()),
        });
    };
    for i in 0..config.waiting {
        // 1000 apart: never within a window of each other nor of the stream.
        ask(&mut app, 10_000.0 + 1000.0 * i as f64, 0);
    }
    app.update();

    let frames_to_run = (config.secs / FRAME.as_secs_f64()).ceil() as usize;
    let per_frame = config.arrivals_per_sec * FRAME.as_secs_f64();
    let mut owed = 0.0;
    let mut frame_times = Vec::with_capacity(frames_to_run);
    let mut waits = Vec::new();
    let mut busy = Duration::ZERO;
    for _ in 0..frames_to_run {
        owed += per_frame;
        while owed >= 1.0 {
            owed -= 1.0;
            let party = if rng.random_range(0..5) == 0 { 2 } else { 0 };
            ask(&mut app, rng.random_range(0.0..1000.0), party);
        }
        now += FRAME;
        app.insert_resource(TimeUpdateStrategy::ManualInstant(now));
        let started = Instant::now();
        app.update();
        let took = started.elapsed();
        busy += took;
        frame_times.push(took);
        take_matched(&mut app, &mut waits);
    }
    let world = app.world_mut();
    let waiting_at_end = world
        .query::<&TicketState>()
        .iter(world)
        .filter(|s| **s == TicketState::InQueue)
        .count();
    let matched = waits.len() as u64;
    Ok(QueueBenchReport {
        frames: Percentiles::of(&mut frame_times),
        matched,
        matched_per_sec: matched as f64 / busy.as_secs_f64().max(1e-9),
        time_to_match: Percentiles::of(&mut waits),
        waiting_at_end,
    })
}

/// Takes the matched tickets and their matches away (as if seated), recording each wait.
fn take_matched(app: &mut App, waits: &mut Vec<Duration>) {
    let world = app.world_mut();
    let now = world.resource::<Time>().elapsed();
    let matched: Vec<(Entity, Duration)> = world
        .query::<(Entity, &TicketState, &QueueTicket)>()
        .iter(world)
        .filter(|(_, state, _)| matches!(state, TicketState::Matched { .. }))
        .map(|(entity, _, queued)| (entity, now.saturating_sub(queued.enqueued_at)))
        .collect();
    let matches: Vec<Entity> = world
        .query_filtered::<Entity, With<Match>>()
        .iter(world)
        .collect();
    let servers: Vec<Entity> = world
        .query_filtered::<Entity, With<bevygap_matchmaker::deployment::StartingFor>>()
        .iter(world)
        .collect();
    for (entity, wait) in matched {
        waits.push(wait);
        world.despawn(entity);
    }
    for entity in matches.into_iter().chain(servers) {
        world.despawn(entity);
    }
    world.resource_mut::<Messages<AllocateDeployment>>().clear();
}
