//! Matchmaking queues over real netcode: NATS, the matchmaker with the local fleet and queue
//! profiles, example game servers, and bot clients asking a queue over `/ws`.
//!
//! - A 2v2 queue with a party of two and two solos: one server, four connected players, and the
//!   teams the server reads from each token are the teams the matchmaker answered.
//! - A duel whose skill window widens after 3 s: two players too far apart at first are matched
//!   once it has widened.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevygap_client_plugin::MatchmakerProtocol;
use bevygap_example_game::bot::{BotOutcome, SharedBotView, bot_config, run_bot_config};
use bevygap_example_game::demo::{DemoEnv, DemoFleet};
use bevygap_matchmaker::queues::QueueProfiles;
use bevygap_shared::protocol::queue::QueueRequest;
use support::{RawClient, WAIT, demo_config, settle, wait_for};

const QUEUES: &str = r#"
[[queue]]
name = "2v2"
teams = 2
team_size = { min = 2, max = 2 }
max_wait_secs = 40

[[queue.rules]]
kind = "difference"
attribute = "skill"
max = 100

[[queue]]
name = "duel"
teams = 2
team_size = { min = 1, max = 1 }
max_wait_secs = 40

[[queue.rules]]
kind = "difference"
attribute = "skill"
max = 50
expand = [{ after_secs = 3, max = 1000 }]
"#;

fn env() -> DemoEnv {
    let mut config = demo_config(DemoFleet::Local);
    config.seats_per_server = 4;
    config.queues = QueueProfiles::from_toml(QUEUES).unwrap();
    DemoEnv::start(&config).unwrap()
}

/// A bot asking `queue` with `skill` (and a party), playing `play_for`, on its own thread.
fn queue_bot(
    env: &DemoEnv,
    queue: &str,
    skill: f64,
    party: &[&str],
    play_for: Duration,
) -> (std::thread::JoinHandle<BotOutcome>, SharedBotView) {
    let mut config = bot_config(&env.simplenet_url(), MatchmakerProtocol::Simplenet, WAIT);
    let mut request = QueueRequest {
        queue: queue.into(),
        party: party.iter().map(|p| (*p).to_owned()).collect(),
        ..QueueRequest::default()
    };
    request.attributes.numbers.insert("skill".into(), skill);
    config.queue = Some(request);
    let view = SharedBotView::default();
    let shared = view.clone();
    let bot = std::thread::spawn(move || run_bot_config(config, play_for, WAIT, shared));
    (bot, view)
}

#[test]
fn a_party_of_two_and_two_solos_play_one_two_versus_two_on_one_server_in_their_teams() {
    let env = env();
    let play_for = Duration::from_secs(6);
    let (party_bot, party) = queue_bot(&env, "2v2", 1000.0, &["ann", "bob"], play_for);
    let (solo_a, view_a) = queue_bot(&env, "2v2", 1040.0, &[], play_for);
    let (solo_b, view_b) = queue_bot(&env, "2v2", 960.0, &[], play_for);

    // The party's second player connects with the session the party's ticket received.
    let mut matched = None;
    let waiting = std::time::Instant::now();
    wait_for("the party's match", || {
        let view = party.0.lock().unwrap().clone();
        matched = view.matched;
        assert!(
            matched.is_some() || !party_bot.is_finished(),
            "the party's bot ended without a match"
        );
        assert!(
            matched.is_some() || waiting.elapsed() < WAIT - Duration::from_secs(1),
            "no match: party {}, solos {} and {}",
            view.state,
            view_a.0.lock().unwrap().state,
            view_b.0.lock().unwrap().state
        );
        matched.is_some()
    });
    let matched = matched.unwrap();
    assert_eq!(matched.teams, 2);
    assert_eq!(matched.party_sessions.len(), 1, "one session for bob");
    let mut bob = [RawClient::start(&matched.party_sessions[0].connect_token)];
    settle(&mut bob);
    let [mut bob] = bob;
    assert_eq!(bob.outcome, Some(Ok(())), "bob connects");
    let bob_id = bob.client_id().unwrap();

    // Four players on one server, each seen on the team the matchmaker gave it.
    wait_for("four connections and every team announced", || {
        bob.keep_alive();
        let views = [&party, &view_a, &view_b].map(|v| v.0.lock().unwrap().clone());
        env.observed(|o| o.connections_now.len()) == 4
            && views
                .iter()
                .all(|v| v.players.len() == 4 && v.players.iter().all(|p| p.team.is_some()))
    });
    assert_eq!(env.observed(|o| o.leases.len()), 1, "one server");
    let views = [&party, &view_a, &view_b].map(|v| v.0.lock().unwrap().clone());
    let players = views[0].players.clone();
    let team_of = |id: u64| players.iter().find(|p| p.id == id).unwrap().team.unwrap();
    for view in &views {
        let me = view.me.unwrap();
        assert_eq!(
            Some(team_of(me)),
            view.matched.as_ref().map(|m| m.team),
            "the server's team is the matchmaker's"
        );
    }
    let (ann, a, b) = (
        views[0].me.unwrap(),
        views[1].me.unwrap(),
        views[2].me.unwrap(),
    );
    assert_eq!(team_of(bob_id), team_of(ann), "the party plays together");
    assert_eq!(team_of(a), team_of(b), "the solos make the other team");
    assert_ne!(team_of(a), team_of(ann));

    for bot in [party_bot, solo_a, solo_b] {
        let outcome = bot.join().unwrap();
        assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcome:?}");
    }
    bob.disconnect();
}

#[test]
fn a_skill_window_that_widens_matches_two_players_too_far_apart_at_first() {
    let env = env();
    let play_for = Duration::from_secs(1);
    let (low, _) = queue_bot(&env, "duel", 1000.0, &[], play_for);
    let (high, _) = queue_bot(&env, "duel", 1500.0, &[], play_for);
    for bot in [low, high] {
        match bot.join().unwrap() {
            BotOutcome::Played {
                request_to_token, ..
            } => assert!(
                request_to_token >= Duration::from_secs(3),
                "matched only once the window widened, after {request_to_token:?}"
            ),
            failed => panic!("{failed:?}"),
        }
    }
}

#[test]
fn a_player_who_leaves_a_running_match_is_replaced_on_the_same_team_by_backfill() {
    let mut config = demo_config(DemoFleet::Local);
    config.seats_per_server = 4;
    config.queues = QueueProfiles::from_toml(QUEUES).unwrap();
    config.backfill_queue = Some("2v2".into());
    let env = DemoEnv::start(&config).unwrap();
    let stay = Duration::from_secs(8);
    // Four solos make a 2v2; the fourth leaves after a second.
    let stayers: Vec<_> = [1000.0, 1010.0, 1020.0]
        .into_iter()
        .map(|skill| queue_bot(&env, "2v2", skill, &[], stay))
        .collect();
    let (leaver, leaver_view) = queue_bot(&env, "2v2", 1030.0, &[], Duration::from_secs(1));
    let left = leaver.join().unwrap();
    assert!(matches!(left, BotOutcome::Played { .. }), "{left:?}");
    let team = leaver_view.0.lock().unwrap().matched.clone().unwrap().team;
    let port = env.observed(|o| o.leases.values().next().map(|l| l.public_addr.port()));

    // The server asks for one player on the leaver's team; a newcomer gets that place.
    let (newcomer, view) = queue_bot(&env, "2v2", 1015.0, &[], Duration::from_secs(1));
    let outcome = newcomer.join().unwrap();
    assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcome:?}");
    let view = view.0.lock().unwrap().clone();
    assert_eq!(
        view.matched.as_ref().unwrap().team,
        team,
        "the leaver's team"
    );
    let me = view.me.unwrap();
    assert_eq!(
        view.players
            .iter()
            .find(|p| p.id == me)
            .and_then(|p| p.team),
        Some(team),
        "the server put the newcomer on that team"
    );
    assert_eq!(env.observed(|o| o.leases.len()), 1, "no second server");
    assert_eq!(
        env.observed(|o| o.leases.values().next().map(|l| l.public_addr.port())),
        port
    );
    for bot in stayers {
        let outcome = bot.0.join().unwrap();
        assert!(matches!(outcome, BotOutcome::Played { .. }), "{outcome:?}");
    }
}
