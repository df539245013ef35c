//! Forming matches from the tickets waiting in one queue: a pure function of the tickets, the
//! profile and the time, so the same input always gives the same matches.
//!
//! Tickets are taken oldest first. Each one in turn is the *anchor* of a match: the younger
//! tickets that fit its rules join it, in age order, until every team is full (or, once the anchor
//! has waited `partial_after`, until every team has `team_min`). A match is judged by the windows
//! of its anchor, its oldest ticket, whose windows are the widest (they only widen with the wait).
//! A party is one ticket and goes to one team. Teams are packed again with each ticket that joins,
//! largest parties first, each into the team with the fewest players that has room, so two solos
//! that came first never keep a later party of two out of a 2v2.
//!
//! Candidates are looked up, not scanned: tickets are bucketed by the values of the queue's
//! equality rules, and within a bucket sorted by the first difference rule's number, so an anchor
//! only looks at tickets inside its window. A [`Budget`] bounds the work of one pass; what it
//! leaves is picked up by the next pass, oldest first again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bevygap_shared::protocol::queue::Attributes;

use super::profile::{QueueProfile, Rule};

/// A ticket waiting in a queue, as the matcher sees it.
#[derive(Debug, Clone, Copy)]
pub struct Waiting<'a> {
    /// A stable, unique key (orders tickets queued at the same instant).
    pub key: u64,
    /// When it joined the queue.
    pub enqueued_at: Duration,
    /// Players on the ticket (a party's size).
    pub players: u32,
    /// Its attributes.
    pub attributes: &'a Attributes,
}

/// A match the matcher formed: indices into the input, each with its team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPlan {
    /// `(index into the waiting tickets, team)`, the anchor first.
    pub tickets: Vec<(usize, u32)>,
    /// Whether it started with teams below `team_max` (after `partial_after`).
    pub partial: bool,
}

/// How much work one pass may do.
#[derive(Debug, Clone)]
pub struct Budget {
    checks_left: u64,
    deadline: Option<Instant>,
    /// Ticket checks done.
    pub checks: u64,
    /// Whether the pass stopped before looking at every anchor.
    pub exhausted: bool,
}

impl Budget {
    /// At most `checks` ticket checks (deterministic; for tests).
    pub fn checks(checks: u64) -> Self {
        Self {
            checks_left: checks,
            deadline: None,
            checks: 0,
            exhausted: false,
        }
    }

    /// Until `deadline` (checked every 64 ticket checks).
    pub fn until(deadline: Instant) -> Self {
        Self {
            checks_left: u64::MAX,
            deadline: Some(deadline),
            checks: 0,
            exhausted: false,
        }
    }

    fn spend(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        self.checks += 1;
        self.checks_left = self.checks_left.saturating_sub(1);
        let out_of_time = self.checks.is_multiple_of(64)
            && self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
        if self.checks_left == 0 || out_of_time {
            self.exhausted = true;
        }
        !self.exhausted
    }
}

/// One ticket's values for the queue's rules, looked up once per pass. `None` when the ticket
/// lacks an attribute a rule needs (such a ticket never matches in this queue).
struct Features<'a> {
    numbers: Vec<f64>,
    equal: Vec<&'a str>,
    sets: Vec<&'a BTreeSet<String>>,
    latencies: Option<&'a BTreeMap<String, u32>>,
}

fn features<'a>(profile: &QueueProfile, attributes: &'a Attributes) -> Option<Features<'a>> {
    let mut found = Features {
        numbers: Vec::new(),
        equal: Vec::new(),
        sets: Vec::new(),
        latencies: None,
    };
    for rule in &profile.rules {
        match rule {
            Rule::Difference { attribute, .. } => {
                found.numbers.push(*attributes.numbers.get(attribute)?);
            }
            Rule::Equal { attribute } => {
                found
                    .equal
                    .push(attributes.strings.get(attribute)?.as_str());
            }
            Rule::Intersect { attribute } => found.sets.push(attributes.sets.get(attribute)?),
            Rule::Latency { .. } => {
                if attributes.latencies_ms.is_empty() {
                    return None;
                }
                found.latencies = Some(&attributes.latencies_ms);
            }
        }
    }
    Some(found)
}

/// The windows of a match whose anchor has waited `waited`.
struct Windows {
    numbers: Vec<f64>,
    latency: Option<f64>,
}

fn windows(profile: &QueueProfile, waited: Duration) -> Windows {
    let mut found = Windows {
        numbers: Vec::new(),
        latency: None,
    };
    for rule in &profile.rules {
        match rule {
            Rule::Difference { window, .. } => found.numbers.push(window.at(waited)),
            Rule::Latency { window } => found.latency = Some(window.at(waited)),
            Rule::Equal { .. } | Rule::Intersect { .. } => {}
        }
    }
    found
}

/// Packs tickets of these sizes into `teams` teams of at most `team_max` players: largest first,
/// each into the team with the fewest players that has room (ties: the lowest team). Returns each
/// ticket's team and the players per team, or `None` when they do not fit that way.
fn pack(sizes: &[u32], teams: usize, team_max: u32) -> Option<(Vec<u32>, Vec<u32>)> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|i| (std::cmp::Reverse(sizes[*i]), *i));
    let mut players = vec![0u32; teams];
    let mut team_of = vec![0u32; sizes.len()];
    for i in order {
        let team = players
            .iter()
            .enumerate()
            .filter(|(_, n)| **n + sizes[i] <= team_max)
            .min_by_key(|(t, n)| (**n, *t))
            .map(|(t, _)| t)?;
        players[team] += sizes[i];
        team_of[i] = u32::try_from(team).unwrap_or(0);
    }
    Some((team_of, players))
}

/// A match being built around an anchor.
struct Builder<'a> {
    team_players: Vec<u32>,
    /// Member indices (the anchor first), their sizes and their teams.
    members: Vec<usize>,
    sizes: Vec<u32>,
    teams_of: Vec<u32>,
    /// (smallest, largest) per difference rule.
    ranges: Vec<(f64, f64)>,
    /// The members every set rule still has in common.
    common: Vec<BTreeSet<&'a str>>,
    /// Regions where every member's ping is within the latency window.
    regions: Option<BTreeSet<&'a str>>,
}

impl<'a> Builder<'a> {
    fn new(teams: u32) -> Self {
        Self {
            team_players: vec![0; teams as usize],
            members: Vec::new(),
            sizes: Vec::new(),
            teams_of: Vec::new(),
            ranges: Vec::new(),
            common: Vec::new(),
            regions: None,
        }
    }

    /// Adds the ticket when it fits a team and keeps every rule within `windows`.
    fn try_add(
        &mut self,
        index: usize,
        players: u32,
        features: &Features<'a>,
        windows: &Windows,
        team_max: u32,
    ) -> bool {
        self.sizes.push(players);
        let packed = pack(&self.sizes, self.team_players.len(), team_max);
        self.sizes.pop();
        let Some((teams_of, team_players)) = packed else {
            return false;
        };
        let first = self.members.is_empty();
        let ranges: Vec<(f64, f64)> = if first {
            features.numbers.iter().map(|v| (*v, *v)).collect()
        } else {
            self.ranges
                .iter()
                .zip(&features.numbers)
                .map(|((lo, hi), v)| (lo.min(*v), hi.max(*v)))
                .collect()
        };
        if ranges
            .iter()
            .zip(&windows.numbers)
            .any(|((lo, hi), window)| hi - lo > *window)
        {
            return false;
        }
        let common: Vec<BTreeSet<&'a str>> = if first {
            features
                .sets
                .iter()
                .map(|set| set.iter().map(String::as_str).collect())
                .collect()
        } else {
            self.common
                .iter()
                .zip(&features.sets)
                .map(|(common, set)| {
                    common
                        .iter()
                        .copied()
                        .filter(|m| set.contains(*m))
                        .collect()
                })
                .collect()
        };
        if common.iter().any(BTreeSet::is_empty) {
            return false;
        }
        let regions = match (windows.latency, features.latencies) {
            (Some(window), Some(pings)) => {
                let within = |region: &&'a str| {
                    pings
                        .get(*region)
                        .is_some_and(|ping| f64::from(*ping) <= window)
                };
                let next: BTreeSet<&'a str> = match &self.regions {
                    None => pings.keys().map(String::as_str).filter(within).collect(),
                    Some(regions) => regions.iter().copied().filter(within).collect(),
                };
                if next.is_empty() {
                    return false;
                }
                Some(next)
            }
            _ => None,
        };
        self.team_players = team_players;
        self.teams_of = teams_of;
        self.sizes.push(players);
        self.members.push(index);
        self.ranges = ranges;
        self.common = common;
        self.regions = regions;
        true
    }

    fn full(&self, team_max: u32) -> bool {
        self.team_players.iter().all(|n| *n == team_max)
    }

    fn at_least(&self, team_min: u32) -> bool {
        self.team_players.iter().all(|n| *n >= team_min)
    }
}

/// Forms what matches it can from `waiting` at time `now`, oldest anchors first, within `budget`.
pub fn form_matches(
    profile: &QueueProfile,
    waiting: &[Waiting<'_>],
    now: Duration,
    budget: &mut Budget,
) -> Vec<MatchPlan> {
    let features: Vec<Option<Features<'_>>> = waiting
        .iter()
        .map(|w| features(profile, w.attributes))
        .collect();
    // Age rank of each ticket: oldest first, then by key.
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    order.sort_by_key(|i| (waiting[*i].enqueued_at, waiting[*i].key));
    let mut rank = vec![0usize; waiting.len()];
    for (position, index) in order.iter().enumerate() {
        rank[*index] = position;
    }
    // Buckets by the equality rules' values; within each, sorted by the first number.
    let mut buckets: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for index in &order {
        if let Some(f) = &features[*index] {
            buckets.entry(f.equal.clone()).or_default().push(*index);
        }
    }
    let sorted_by_number = !profile.rules.is_empty()
        && profile
            .rules
            .iter()
            .any(|r| matches!(r, Rule::Difference { .. }));
    if sorted_by_number {
        for members in buckets.values_mut() {
            members.sort_by(|a, b| {
                let (fa, fb) = (&features[*a], &features[*b]);
                let va = fa.as_ref().map_or(0.0, |f| f.numbers[0]);
                let vb = fb.as_ref().map_or(0.0, |f| f.numbers[0]);
                va.total_cmp(&vb).then(rank[*a].cmp(&rank[*b]))
            });
        }
    }

    let mut used = vec![false; waiting.len()];
    let mut plans = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    for &anchor in &order {
        if used[anchor] {
            continue;
        }
        let Some(anchor_features) = &features[anchor] else {
            continue;
        };
        let waited = now.saturating_sub(waiting[anchor].enqueued_at);
        let windows = windows(profile, waited);
        let mut builder = Builder::new(profile.teams);
        if !builder.try_add(
            anchor,
            waiting[anchor].players,
            anchor_features,
            &windows,
            profile.team_max,
        ) {
            continue;
        }
        let bucket = &buckets[&anchor_features.equal];
        candidates.clear();
        if sorted_by_number {
            let value = anchor_features.numbers[0];
            let window = windows.numbers[0];
            let number = |i: &usize| features[*i].as_ref().map_or(0.0, |f| f.numbers[0]);
            let start = bucket.partition_point(|i| number(i) < value - window);
            let end = bucket.partition_point(|i| number(i) <= value + window);
            candidates.extend(
                bucket[start..end]
                    .iter()
                    .copied()
                    .filter(|i| !used[*i] && rank[*i] > rank[anchor]),
            );
            candidates.sort_by_key(|i| rank[*i]);
        } else {
            candidates.extend(
                bucket
                    .iter()
                    .copied()
                    .filter(|i| !used[*i] && rank[*i] > rank[anchor]),
            );
        }
        for &candidate in &candidates {
            if !budget.spend() {
                return plans;
            }
            let Some(candidate_features) = &features[candidate] else {
                continue;
            };
            builder.try_add(
                candidate,
                waiting[candidate].players,
                candidate_features,
                &windows,
                profile.team_max,
            );
            if builder.full(profile.team_max) {
                break;
            }
        }
        let partial_allowed = profile.partial_after.is_some_and(|after| waited >= after);
        let full = builder.full(profile.team_max);
        if full || (partial_allowed && builder.at_least(profile.team_min)) {
            for index in &builder.members {
                used[*index] = true;
            }
            plans.push(MatchPlan {
                tickets: builder.members.into_iter().zip(builder.teams_of).collect(),
                partial: !full,
            });
        }
        if !budget.spend() {
            return plans;
        }
    }
    plans
}
