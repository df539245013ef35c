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
    /// For a running server's backfill (not a ticket): the players already on each team. A
    /// backfill is only ever an anchor, with no players of its own; its match fills the teams
    /// up to their size.
    pub prefilled: Option<&'a [u32]>,
}

/// A match the matcher formed: indices into the input, each with its team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPlan {
    /// `(index into the waiting tickets, team)`, the anchor first.
    pub tickets: Vec<(usize, u32)>,
    /// Whether it started with teams below `team_max` (after `partial_after`).
    pub partial: bool,
}

/// How much work one pass may do, and where it starts: a pass that runs out of budget records
/// the anchor it stopped at, and the next pass starts there (then wraps around to the oldest), so
/// old tickets that cannot match never starve younger ones.
#[derive(Debug, Clone)]
pub struct Budget {
    checks_left: u64,
    /// The time allowed, from the first ticket checked (preparing the pass is not counted).
    allowance: Option<Duration>,
    deadline: Option<Instant>,
    /// Ticket checks done.
    pub checks: u64,
    /// Whether the pass stopped before looking at every anchor.
    pub exhausted: bool,
    /// The age rank of the anchor to start at (0: the oldest).
    pub start_at: usize,
    /// Where the pass stopped, when it ran out: the next pass's `start_at`.
    pub stopped_at: Option<usize>,
}

impl Budget {
    /// At most `checks` ticket checks (deterministic; for tests).
    pub fn checks(checks: u64) -> Self {
        Self {
            checks_left: checks,
            allowance: None,
            deadline: None,
            checks: 0,
            exhausted: false,
            start_at: 0,
            stopped_at: None,
        }
    }

    /// For `allowance` from the first ticket checked (the clock is read every 64 checks).
    pub fn time(allowance: Duration) -> Self {
        Self {
            checks_left: u64::MAX,
            allowance: Some(allowance),
            deadline: None,
            checks: 0,
            exhausted: false,
            start_at: 0,
            stopped_at: None,
        }
    }

    /// Starts the pass at the anchor of age rank `rank` (see [`Budget::stopped_at`]).
    pub fn starting_at(mut self, rank: usize) -> Self {
        self.start_at = rank;
        self
    }

    fn spend(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        if self.checks == 0
            && let Some(allowance) = self.allowance
        {
            self.deadline = Some(Instant::now() + allowance);
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

/// A set for the rows of tickets that lack an attribute (they never match).
static NO_SET: BTreeSet<String> = BTreeSet::new();

/// The set of a backfill that does not name a set attribute: any set goes.
static ANY_SET: BTreeSet<String> = BTreeSet::new();

/// The tickets' values for the queue's rules, looked up once per pass into flat columns (no
/// allocation per ticket). A row is not `valid` when the ticket lacks an attribute a rule needs.
struct Table<'a> {
    /// Difference rules, equality rules and set rules per row.
    d: usize,
    e: usize,
    s: usize,
    numbers: Vec<f64>,
    equal: Vec<&'a str>,
    sets: Vec<&'a BTreeSet<String>>,
    latencies: Vec<Option<&'a BTreeMap<String, u32>>>,
    valid: Vec<bool>,
}

impl<'a> Table<'a> {
    fn new(profile: &QueueProfile, waiting: &[Waiting<'a>]) -> Self {
        let count = |f: fn(&Rule) -> bool| profile.rules.iter().filter(|r| f(r)).count();
        let d = count(|r| matches!(r, Rule::Difference { .. }));
        let e = count(|r| matches!(r, Rule::Equal { .. }));
        let s = count(|r| matches!(r, Rule::Intersect { .. }));
        let latency = profile
            .rules
            .iter()
            .any(|r| matches!(r, Rule::Latency { .. }));
        let n = waiting.len();
        let mut table = Self {
            d,
            e,
            s,
            numbers: Vec::with_capacity(n * d),
            equal: Vec::with_capacity(n * e),
            sets: Vec::with_capacity(n * s),
            latencies: Vec::with_capacity(n),
            valid: Vec::with_capacity(n),
        };
        for ticket in waiting {
            let attributes = ticket.attributes;
            // A backfill constrains only what it names (but must name equality rules' values).
            let backfill = ticket.prefilled.is_some();
            let mut valid = true;
            for rule in &profile.rules {
                match rule {
                    Rule::Difference { attribute, .. } => {
                        let value = attributes.numbers.get(attribute);
                        valid &= value.is_some() || backfill;
                        let missing = if backfill { f64::NAN } else { 0.0 };
                        table.numbers.push(value.copied().unwrap_or(missing));
                    }
                    Rule::Equal { attribute } => {
                        let value = attributes.strings.get(attribute);
                        valid &= value.is_some();
                        table.equal.push(value.map_or("", String::as_str));
                    }
                    Rule::Intersect { attribute } => {
                        let value = attributes.sets.get(attribute);
                        valid &= value.is_some() || backfill;
                        let missing = if backfill { &ANY_SET } else { &NO_SET };
                        table.sets.push(value.unwrap_or(missing));
                    }
                    Rule::Latency { .. } => {}
                }
            }
            if latency && !(backfill && attributes.latencies_ms.is_empty()) {
                valid &= !attributes.latencies_ms.is_empty();
                table.latencies.push(Some(&attributes.latencies_ms));
            } else {
                table.latencies.push(None);
            }
            table.valid.push(valid);
        }
        table
    }

    fn numbers(&self, i: usize) -> &[f64] {
        &self.numbers[i * self.d..(i + 1) * self.d]
    }

    fn equal(&self, i: usize) -> &[&'a str] {
        &self.equal[i * self.e..(i + 1) * self.e]
    }

    fn sets(&self, i: usize) -> &[&'a BTreeSet<String>] {
        &self.sets[i * self.s..(i + 1) * self.s]
    }
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
fn pack(sizes: &[u32], initial: &[u32], team_max: u32) -> Option<(Vec<u32>, Vec<u32>)> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|i| (std::cmp::Reverse(sizes[*i]), *i));
    let mut players = initial.to_vec();
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
    /// Players already on each team (a backfill's), then with the members.
    initial: Vec<u32>,
    team_players: Vec<u32>,
    /// Member indices (the anchor first), their sizes and their teams.
    members: Vec<usize>,
    sizes: Vec<u32>,
    teams_of: Vec<u32>,
    /// (smallest, largest) per difference rule; empty (∞, -∞) until a member names a value.
    ranges: Vec<(f64, f64)>,
    /// The members every set rule still has in common (`None`: no member has named one yet).
    common: Vec<Option<BTreeSet<&'a str>>>,
    /// Regions where every member's ping is within the latency window.
    regions: Option<BTreeSet<&'a str>>,
}

impl<'a> Builder<'a> {
    fn new(teams: u32, prefilled: Option<&[u32]>) -> Self {
        let mut initial = vec![0; teams as usize];
        if let Some(prefilled) = prefilled {
            for (team, players) in initial.iter_mut().zip(prefilled) {
                *team = *players;
            }
        }
        Self {
            team_players: initial.clone(),
            initial,
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
        table: &Table<'a>,
        windows: &Windows,
        team_max: u32,
    ) -> bool {
        let (numbers, sets, latencies) = (
            table.numbers(index),
            table.sets(index),
            table.latencies[index],
        );
        self.sizes.push(players);
        let packed = pack(&self.sizes, &self.initial, team_max);
        self.sizes.pop();
        let Some((teams_of, team_players)) = packed else {
            return false;
        };
        let first = self.members.is_empty();
        // A value a backfill does not name (NaN, ANY_SET) leaves its rule to the tickets.
        let ranges: Vec<(f64, f64)> = numbers
            .iter()
            .enumerate()
            .map(|(rule, v)| {
                let (lo, hi) = if first {
                    (f64::INFINITY, f64::NEG_INFINITY)
                } else {
                    self.ranges[rule]
                };
                if v.is_nan() {
                    (lo, hi)
                } else {
                    (lo.min(*v), hi.max(*v))
                }
            })
            .collect();
        if ranges
            .iter()
            .zip(&windows.numbers)
            .any(|((lo, hi), window)| hi >= lo && hi - lo > *window)
        {
            return false;
        }
        let common: Vec<Option<BTreeSet<&'a str>>> = sets
            .iter()
            .enumerate()
            .map(|(rule, set)| {
                let so_far = if first {
                    None
                } else {
                    self.common[rule].as_ref()
                };
                if std::ptr::eq(*set, &ANY_SET) {
                    return so_far.cloned();
                }
                Some(match so_far {
                    None => set.iter().map(String::as_str).collect(),
                    Some(common) => common
                        .iter()
                        .copied()
                        .filter(|m| set.contains(*m))
                        .collect(),
                })
            })
            .collect();
        if common.iter().flatten().any(BTreeSet::is_empty) {
            return false;
        }
        let regions = match (windows.latency, latencies) {
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
            (Some(_), None) => self.regions.clone(),
            (None, _) => None,
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

/// The fewest tickets that can make a match: a full one, or a partial one once allowed.
fn fewest_tickets(profile: &QueueProfile, partial_allowed: bool, backfill: bool) -> usize {
    if backfill {
        return 2; // the backfill and one ticket
    }
    let players = if partial_allowed {
        profile.teams * profile.team_min
    } else {
        profile.full_size()
    };
    players.div_ceil(profile.team_max.max(1)).max(1) as usize
}

/// Forms what matches it can from `waiting` at time `now`, oldest anchors first, within `budget`.
pub fn form_matches(
    profile: &QueueProfile,
    waiting: &[Waiting<'_>],
    now: Duration,
    budget: &mut Budget,
) -> Vec<MatchPlan> {
    let table = Table::new(profile, waiting);
    // Age rank of each ticket: oldest first, then by key (callers usually pass them so).
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    if !waiting.is_sorted_by_key(|w| (w.enqueued_at, w.key)) {
        order.sort_unstable_by_key(|i| (waiting[*i].enqueued_at, waiting[*i].key));
    }
    let mut rank = vec![0usize; waiting.len()];
    for (position, index) in order.iter().enumerate() {
        rank[*index] = position;
    }
    // Valid tickets sorted by their equality values (a bucket is a run of equal ones), then by
    // the first difference rule's number, then by age.
    let by_number = table.d > 0;
    let mut sorted: Vec<usize> = order.iter().copied().filter(|i| table.valid[*i]).collect();
    sorted.sort_by(|a, b| {
        table
            .equal(*a)
            .cmp(table.equal(*b))
            .then_with(|| {
                if by_number {
                    table.numbers(*a)[0].total_cmp(&table.numbers(*b)[0])
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then(rank[*a].cmp(&rank[*b]))
    });
    // Each valid ticket's bucket, as a range of `sorted`.
    let mut bucket = vec![(0usize, 0usize); waiting.len()];
    let mut run_start = 0;
    for end in 1..=sorted.len() {
        if end == sorted.len() || table.equal(sorted[end]) != table.equal(sorted[run_start]) {
            for &i in &sorted[run_start..end] {
                bucket[i] = (run_start, end);
            }
            run_start = end;
        }
    }
    let first_window = profile.rules.iter().find_map(|r| match r {
        Rule::Difference { window, .. } => Some(window),
        _ => None,
    });

    let mut used = vec![false; waiting.len()];
    let mut plans = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    let start = budget.start_at.min(order.len());
    let rotated = order[start..].iter().chain(&order[..start]).copied();
    for anchor in rotated {
        if used[anchor] || !table.valid[anchor] {
            continue;
        }
        if !budget.spend() {
            budget.stopped_at = Some(rank[anchor]);
            return plans;
        }
        let waited = now.saturating_sub(waiting[anchor].enqueued_at);
        let partial_allowed = profile.partial_after.is_some_and(|after| waited >= after);
        // The tickets that could join: younger, in the anchor's bucket, within its first window.
        let (bucket_start, bucket_end) = bucket[anchor];
        let members = &sorted[bucket_start..bucket_end];
        let (start, end) = match first_window {
            Some(window) if !table.numbers(anchor)[0].is_nan() => {
                let value = table.numbers(anchor)[0];
                let window = window.at(waited);
                (
                    members.partition_point(|i| table.numbers(*i)[0] < value - window),
                    members.partition_point(|i| table.numbers(*i)[0] <= value + window),
                )
            }
            _ => (0, members.len()),
        };
        candidates.clear();
        candidates.extend(
            members[start..end].iter().copied().filter(|i| {
                !used[*i] && rank[*i] > rank[anchor] && waiting[*i].prefilled.is_none()
            }),
        );
        let backfill = waiting[anchor].prefilled;
        if candidates.len() + 1 < fewest_tickets(profile, partial_allowed, backfill.is_some()) {
            continue;
        }
        candidates.sort_unstable_by_key(|i| rank[*i]);
        let windows = windows(profile, waited);
        let mut builder = Builder::new(profile.teams, backfill);
        if !builder.try_add(
            anchor,
            waiting[anchor].players,
            &table,
            &windows,
            profile.team_max,
        ) {
            continue;
        }
        for &candidate in &candidates {
            if !budget.spend() {
                budget.stopped_at = Some(rank[anchor]);
                return plans;
            }
            builder.try_add(
                candidate,
                waiting[candidate].players,
                &table,
                &windows,
                profile.team_max,
            );
            if builder.full(profile.team_max) {
                break;
            }
        }
        let full = builder.full(profile.team_max);
        let someone = builder.members.len() > 1 || backfill.is_none();
        if someone && (full || (partial_allowed && builder.at_least(profile.team_min))) {
            for index in &builder.members {
                used[*index] = true;
            }
            plans.push(MatchPlan {
                tickets: builder.members.into_iter().zip(builder.teams_of).collect(),
                partial: !full,
            });
        }
    }
    plans
}
