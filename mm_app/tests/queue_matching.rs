//! Properties of the matcher over random queues and random ticket streams, run second by second
//! until every ticket is matched or has waited its queue's maximum: no ticket in two matches,
//! parties never split, teams within the profile's sizes, every rule within the windows of the
//! match's time, every ticket matched or expired by its max wait, and the same input always
//! giving the same matches. Plus worked examples of widening windows and partial matches.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bevygap_matchmaker::queues::{
    Budget, Expansion, MatchPlan, QueueProfile, Rule, Waiting, form_matches,
};
use bevygap_shared::protocol::queue::Attributes;
use proptest::prelude::*;

/// A ticket of the generated stream.
#[derive(Debug, Clone)]
struct Arrival {
    at_secs: u64,
    players: u32,
    attributes: Attributes,
}

const REGIONS: [&str; 2] = ["eu", "us"];
const MODES: [&str; 2] = ["ranked", "casual"];
const LANGUAGES: [&str; 3] = ["en", "fr", "de"];

fn expansion(base: f64, steps: Vec<(u64, f64)>) -> Expansion {
    let mut widened = base;
    Expansion {
        base,
        steps: steps
            .into_iter()
            .enumerate()
            .map(|(i, (after, extra))| {
                widened += extra;
                (Duration::from_secs(after + 3 * i as u64), widened)
            })
            .collect(),
    }
}

fn profile() -> impl Strategy<Value = QueueProfile> {
    (
        1u32..=3,
        1u32..=4,
        proptest::option::of(0u64..20),
        20u64..40,
        (
            1.0f64..300.0,
            proptest::collection::vec((1u64..8, 0.0f64..300.0), 0..3),
        ),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((
            20.0f64..120.0,
            proptest::collection::vec((1u64..8, 0.0f64..100.0), 0..2),
        )),
    )
        .prop_flat_map(
            |(teams, team_max, partial, max_wait, skill, equal, intersect, latency)| {
                (1..=team_max).prop_map(move |team_min| {
                    let mut rules = vec![Rule::Difference {
                        attribute: "skill".into(),
                        window: expansion(skill.0, skill.1.clone()),
                    }];
                    if equal {
                        rules.push(Rule::Equal {
                            attribute: "mode".into(),
                        });
                    }
                    if intersect {
                        rules.push(Rule::Intersect {
                            attribute: "languages".into(),
                        });
                    }
                    if let Some((base, steps)) = &latency {
                        rules.push(Rule::Latency {
                            window: expansion(*base, steps.clone()),
                        });
                    }
                    QueueProfile {
                        name: "q".into(),
                        versions: Vec::new(),
                        teams,
                        team_min,
                        team_max,
                        partial_after: partial.map(Duration::from_secs),
                        max_wait: Duration::from_secs(max_wait),
                        rules,
                    }
                })
            },
        )
}

fn arrivals(team_max: u32) -> impl Strategy<Value = Vec<Arrival>> {
    let arrival = (
        0u64..30,
        1..=team_max.min(3),
        0.0f64..1000.0,
        0..MODES.len(),
        1u8..8,
        (0u32..200, 0u32..200),
    )
        .prop_map(|(at_secs, players, skill, mode, languages, (eu, us))| {
            let mut attributes = Attributes::default();
            attributes.numbers.insert("skill".into(), skill);
            attributes.strings.insert("mode".into(), MODES[mode].into());
            let set: BTreeSet<String> = LANGUAGES
                .iter()
                .enumerate()
                .filter(|(i, _)| languages & (1 << i) != 0)
                .map(|(_, l)| (*l).to_owned())
                .collect();
            attributes.sets.insert("languages".into(), set);
            attributes.latencies_ms = REGIONS
                .iter()
                .map(|r| (*r).to_owned())
                .zip([eu, us])
                .collect::<BTreeMap<_, _>>();
            Arrival {
                at_secs,
                players,
                attributes,
            }
        });
    proptest::collection::vec(arrival, 0..60)
}

/// What one simulated run produced: each match with the second it was made, and each ticket's
/// fate (matched or expired at a second).
#[derive(Debug, Clone, PartialEq)]
struct Run {
    matches: Vec<(u64, MatchPlan)>,
    expired: BTreeMap<usize, u64>,
    matched: BTreeMap<usize, u64>,
}

/// Runs the queue second by second: tickets arrive, those past their max wait expire, the rest
/// are matched (with `checks` of budget per pass, the leftovers going to the next second).
fn simulate(profile: &QueueProfile, stream: &[Arrival], checks: u64) -> Run {
    let mut run = Run {
        matches: Vec::new(),
        expired: BTreeMap::new(),
        matched: BTreeMap::new(),
    };
    let mut waiting: Vec<usize> = Vec::new();
    let mut cursor = 0;
    let end = stream.iter().map(|a| a.at_secs).max().unwrap_or(0) + profile.max_wait.as_secs() + 2;
    for second in 0..=end {
        let now = Duration::from_secs(second);
        waiting.extend((0..stream.len()).filter(|i| stream[*i].at_secs == second));
        waiting.retain(|i| {
            let expired = now - Duration::from_secs(stream[*i].at_secs) >= profile.max_wait;
            if expired {
                run.expired.insert(*i, second);
            }
            !expired
        });
        let view: Vec<Waiting<'_>> = waiting
            .iter()
            .map(|i| Waiting {
                key: *i as u64,
                enqueued_at: Duration::from_secs(stream[*i].at_secs),
                players: stream[*i].players,
                attributes: &stream[*i].attributes,
                prefilled: None,
            })
            .collect();
        // A pass that runs out of budget hands its place to the next one.
        let mut budget = Budget::checks(checks).starting_at(cursor);
        let plans = form_matches(profile, &view, now, &mut budget);
        cursor = budget.stopped_at.unwrap_or(0);
        let mut taken = BTreeSet::new();
        for plan in plans {
            let plan = MatchPlan {
                tickets: plan
                    .tickets
                    .iter()
                    .map(|(index, team)| (waiting[*index], *team))
                    .collect(),
                partial: plan.partial,
            };
            for (ticket, _) in &plan.tickets {
                taken.insert(*ticket);
                assert!(
                    run.matched.insert(*ticket, second).is_none(),
                    "ticket {ticket} in two matches"
                );
            }
            run.matches.push((second, plan));
        }
        waiting.retain(|i| !taken.contains(i));
    }
    run
}

/// Checks one match against the profile at the second it was made.
fn check_match(profile: &QueueProfile, stream: &[Arrival], second: u64, plan: &MatchPlan) {
    let anchor = plan.tickets[0].0;
    let waited = Duration::from_secs(second - stream[anchor].at_secs);
    for (ticket, _) in &plan.tickets {
        assert!(
            (stream[*ticket].at_secs, *ticket) >= (stream[anchor].at_secs, anchor),
            "the anchor is the oldest ticket"
        );
    }
    // Each ticket on one team (a party is never split), teams within sizes.
    let mut per_team = vec![0u32; profile.teams as usize];
    let mut seen = BTreeSet::new();
    for (ticket, team) in &plan.tickets {
        assert!(seen.insert(*ticket), "a ticket appears once in its match");
        assert!(*team < profile.teams);
        per_team[*team as usize] += stream[*ticket].players;
    }
    for players in &per_team {
        assert!(*players <= profile.team_max, "{per_team:?}");
        if plan.partial {
            assert!(*players >= profile.team_min, "{per_team:?}");
        } else {
            assert_eq!(*players, profile.team_max, "{per_team:?}");
        }
    }
    if plan.partial {
        let after = profile.partial_after.expect("partial only when allowed");
        assert!(
            waited >= after,
            "partial after {after:?}, waited {waited:?}"
        );
    }
    let members: Vec<&Attributes> = plan
        .tickets
        .iter()
        .map(|(t, _)| &stream[*t].attributes)
        .collect();
    for rule in &profile.rules {
        match rule {
            Rule::Difference { attribute, window } => {
                let values: Vec<f64> = members.iter().map(|a| a.numbers[attribute]).collect();
                let spread = values.iter().cloned().fold(f64::MIN, f64::max)
                    - values.iter().cloned().fold(f64::MAX, f64::min);
                assert!(spread <= window.at(waited), "{attribute} spread {spread}");
            }
            Rule::Equal { attribute } => {
                let values: BTreeSet<&String> =
                    members.iter().map(|a| &a.strings[attribute]).collect();
                assert_eq!(values.len(), 1, "{attribute}: {values:?}");
            }
            Rule::Intersect { attribute } => {
                let common = members
                    .iter()
                    .skip(1)
                    .fold(members[0].sets[attribute].clone(), |common, a| {
                        common.intersection(&a.sets[attribute]).cloned().collect()
                    });
                assert!(!common.is_empty(), "{attribute} in common");
            }
            Rule::Latency { window } => {
                let limit = window.at(waited);
                assert!(
                    REGIONS.iter().any(|region| members
                        .iter()
                        .all(|a| f64::from(a.latencies_ms[*region]) <= limit)),
                    "a region within {limit} ms for everyone"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn matches_keep_every_rule_and_every_ticket_ends_by_its_max_wait(
        (profile, stream) in profile().prop_flat_map(|p| {
            let team_max = p.team_max;
            (Just(p), arrivals(team_max))
        }),
        checks in prop_oneof![Just(u64::MAX), 1u64..40],
    ) {
        let run = simulate(&profile, &stream, checks);
        for (second, plan) in &run.matches {
            check_match(&profile, &stream, *second, plan);
        }
        for (ticket, arrival) in stream.iter().enumerate() {
            let matched = run.matched.get(&ticket);
            let expired = run.expired.get(&ticket);
            prop_assert!(matched.is_some() != expired.is_some(), "ticket {} matched or expired, once", ticket);
            if let Some(second) = expired {
                prop_assert_eq!(*second, arrival.at_secs + profile.max_wait.as_secs());
            }
            if let Some(second) = matched {
                prop_assert!(*second < arrival.at_secs + profile.max_wait.as_secs());
            }
        }
        // Deterministic: the same stream gives the same matches.
        prop_assert_eq!(&simulate(&profile, &stream, checks), &run);
    }
}

fn ticket(skill: f64) -> Attributes {
    let mut attributes = Attributes::default();
    attributes.numbers.insert("skill".into(), skill);
    attributes
}

fn duel(window: Expansion) -> QueueProfile {
    QueueProfile {
        name: "duel".into(),
        versions: Vec::new(),
        teams: 2,
        team_min: 1,
        team_max: 1,
        partial_after: None,
        max_wait: Duration::from_secs(60),
        rules: vec![Rule::Difference {
            attribute: "skill".into(),
            window,
        }],
    }
}

fn waiting<'a>(tickets: &'a [(u64, u32, Attributes)]) -> Vec<Waiting<'a>> {
    tickets
        .iter()
        .enumerate()
        .map(|(key, (at, players, attributes))| Waiting {
            key: key as u64,
            enqueued_at: Duration::from_secs(*at),
            players: *players,
            attributes,
            prefilled: None,
        })
        .collect()
}

#[test]
fn a_skill_window_that_widens_makes_a_match_that_was_impossible_at_first() {
    let profile = duel(Expansion {
        base: 100.0,
        steps: vec![(Duration::from_secs(10), 500.0)],
    });
    let tickets = [(0, 1, ticket(1000.0)), (0, 1, ticket(1400.0))];
    let view = waiting(&tickets);
    let at = |secs| {
        form_matches(
            &profile,
            &view,
            Duration::from_secs(secs),
            &mut Budget::checks(100),
        )
    };
    assert!(at(0).is_empty(), "400 apart, the window is 100");
    assert!(at(9).is_empty());
    let plans = at(10);
    assert_eq!(plans.len(), 1, "after 10 s the window is 500");
    assert_eq!(plans[0].tickets, vec![(0, 0), (1, 1)]);
}

#[test]
fn a_party_of_two_and_two_solos_make_a_two_versus_two_with_the_party_together() {
    let mut profile = duel(Expansion {
        base: 1000.0,
        steps: Vec::new(),
    });
    profile.team_max = 2;
    let tickets = [
        (0, 1, ticket(1000.0)),
        (1, 2, ticket(1100.0)),
        (2, 1, ticket(900.0)),
    ];
    let plans = form_matches(
        &profile,
        &waiting(&tickets),
        Duration::from_secs(3),
        &mut Budget::checks(100),
    );
    assert_eq!(plans.len(), 1);
    let teams: HashMap<usize, u32> = plans[0].tickets.iter().copied().collect();
    assert_eq!(teams[&0], teams[&2], "the two solos together");
    assert_ne!(teams[&0], teams[&1], "the party on the other team");
}

#[test]
fn two_solos_that_came_first_make_room_for_a_later_party_of_two() {
    let mut profile = duel(Expansion {
        base: 1000.0,
        steps: Vec::new(),
    });
    profile.team_max = 2;
    let tickets = [
        (0, 1, ticket(1000.0)),
        (1, 1, ticket(1010.0)),
        (2, 2, ticket(990.0)),
    ];
    let plans = form_matches(
        &profile,
        &waiting(&tickets),
        Duration::from_secs(3),
        &mut Budget::checks(100),
    );
    assert_eq!(
        plans.len(),
        1,
        "the solos are packed together for the party"
    );
    let teams: HashMap<usize, u32> = plans[0].tickets.iter().copied().collect();
    assert_eq!(teams[&0], teams[&1]);
    assert_ne!(teams[&0], teams[&2]);
}

#[test]
fn partial_matches_start_only_after_their_wait() {
    let mut profile = duel(Expansion {
        base: 1000.0,
        steps: Vec::new(),
    });
    profile.team_max = 3;
    profile.team_min = 1;
    profile.partial_after = Some(Duration::from_secs(20));
    let tickets = [(0, 1, ticket(1000.0)), (0, 1, ticket(1000.0))];
    let view = waiting(&tickets);
    assert!(
        form_matches(
            &profile,
            &view,
            Duration::from_secs(19),
            &mut Budget::checks(100)
        )
        .is_empty()
    );
    let plans = form_matches(
        &profile,
        &view,
        Duration::from_secs(20),
        &mut Budget::checks(100),
    );
    assert_eq!(plans.len(), 1);
    assert!(plans[0].partial);
}

#[test]
fn a_ticket_without_an_attribute_its_queue_needs_never_matches() {
    let profile = duel(Expansion {
        base: 1000.0,
        steps: Vec::new(),
    });
    let tickets = [
        (0, 1, Attributes::default()),
        (0, 1, ticket(1.0)),
        (0, 1, ticket(2.0)),
    ];
    let plans = form_matches(
        &profile,
        &waiting(&tickets),
        Duration::from_secs(1),
        &mut Budget::checks(100),
    );
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].tickets, vec![(1, 0), (2, 1)]);
}

#[test]
fn a_steady_stream_of_close_players_is_matched_oldest_first() {
    let mut profile = duel(Expansion {
        base: 200.0,
        steps: vec![(Duration::from_secs(5), 400.0)],
    });
    profile.team_max = 2;
    // 400 tickets, four a second, skills spread over 1000; parties of two now and then.
    let tickets: Vec<(u64, u32, Attributes)> = (0..400u64)
        .map(|i| {
            let skill = ((i * 7919) % 1000) as f64;
            (i / 4, if i % 5 == 0 { 2 } else { 1 }, ticket(skill))
        })
        .collect();
    let stream: Vec<Arrival> = tickets
        .iter()
        .map(|(at, players, attributes)| Arrival {
            at_secs: *at,
            players: *players,
            attributes: attributes.clone(),
        })
        .collect();
    let run = simulate(&profile, &stream, u64::MAX);
    for (second, plan) in &run.matches {
        check_match(&profile, &stream, *second, plan);
    }
    assert!(
        run.matched.len() >= 390,
        "{} of 400 matched, {} expired",
        run.matched.len(),
        run.expired.len()
    );
    let waits: Vec<u64> = run
        .matched
        .iter()
        .map(|(ticket, second)| second - stream[*ticket].at_secs)
        .collect();
    assert!(waits.iter().all(|w| *w <= 10), "{waits:?}");
}
