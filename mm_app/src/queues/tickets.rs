//! Queue tickets: a request that named a queue is checked against the queue's profile when it
//! arrives, then waits ([`TicketState::InQueue`](crate::ticket::TicketState::InQueue)) with a
//! [`QueueTicket`] until the matcher puts it in a match or its max wait is over.

use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::queue::QueueRequest;
use thiserror::Error;

use super::profile::{QueueProfile, QueueProfiles, Rule};

/// What one queue has seen, for progress estimates, inspection and the status page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// Matches formed.
    pub matches: u64,
    /// Tickets matched.
    pub matched_tickets: u64,
    /// Tickets that waited their max wait without a match.
    pub expired: u64,
    /// Smoothed wait from joining to a match (for estimates); `None` before the first match.
    pub typical_wait: Option<Duration>,
}

impl QueueStats {
    /// Counts a match whose tickets waited `waits`.
    pub fn record_match(&mut self, waits: &[Duration]) {
        self.matches += 1;
        self.matched_tickets += waits.len() as u64;
        for wait in waits {
            self.typical_wait = Some(match self.typical_wait {
                None => *wait,
                // An exponential average: a fifth of each new wait.
                Some(typical) => typical.mul_f64(0.8) + wait.mul_f64(0.2),
            });
        }
    }
}

/// The queues this matchmaker runs (from `--queues`), and what each has seen.
#[derive(Resource, Debug, Clone, Default)]
pub struct Queues {
    /// The profiles, in the file's order.
    pub profiles: QueueProfiles,
    /// Per profile, same order.
    pub stats: Vec<QueueStats>,
    /// Set when a ticket joined: the matcher runs in the next frame rather than at its tick.
    pub dirty: bool,
    /// Per profile: the age rank the next pass starts at (where the last one ran out of budget).
    pub cursors: Vec<usize>,
    next_key: u64,
}

impl Queues {
    /// The queues of these profiles, with nothing seen yet.
    pub fn new(profiles: QueueProfiles) -> Self {
        let stats = vec![QueueStats::default(); profiles.0.len()];
        let cursors = vec![0; profiles.0.len()];
        Self {
            profiles,
            stats,
            dirty: false,
            cursors,
            next_key: 0,
        }
    }

    /// A key that orders tickets joining at the same instant.
    pub fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }
}

/// A ticket waiting in a queue.
#[derive(Component, Debug, Clone)]
pub struct QueueTicket {
    /// The queue's index in [`Queues::profiles`].
    pub queue: usize,
    /// What the client asked for.
    pub request: QueueRequest,
    /// When it joined (app elapsed time).
    pub enqueued_at: Duration,
    /// Orders tickets that joined at the same instant.
    pub key: u64,
    /// The widening steps and position the player was last told, and when.
    pub told: Option<(usize, usize, Duration)>,
}

/// Why a request cannot join the queue it named. The client is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QueueRefusal {
    /// This matchmaker has no queue of that name.
    #[error("no queue named {queue:?}; this matchmaker runs {known}")]
    UnknownQueue {
        /// The name asked for.
        queue: String,
        /// The queues it runs.
        known: String,
    },
    /// The queue does not serve the client's game version.
    #[error("queue {queue:?} does not serve version {version:?}")]
    Version {
        /// The queue.
        queue: String,
        /// The version asked for.
        version: String,
    },
    /// A rule needs an attribute the ticket lacks.
    #[error("queue {queue:?} needs the {kind} attribute {attribute:?}")]
    MissingAttribute {
        /// The queue.
        queue: String,
        /// The attribute.
        attribute: String,
        /// Its kind (`numbers`, `strings`, `sets`, `latencies_ms`).
        kind: &'static str,
    },
    /// The party does not fit on one team.
    #[error("queue {queue:?} has teams of at most {max} players; the party has {players}")]
    PartyTooLarge {
        /// The queue.
        queue: String,
        /// Players on the ticket.
        players: u32,
        /// The queue's team size.
        max: u32,
    },
}

/// The index of the queue `request` may join, or why not.
pub fn admit(
    profiles: &QueueProfiles,
    game: &GameRef,
    request: &QueueRequest,
) -> Result<usize, QueueRefusal> {
    let Some(index) = profiles.0.iter().position(|q| q.name == request.queue) else {
        let known: Vec<&str> = profiles.0.iter().map(|q| q.name.as_str()).collect();
        return Err(QueueRefusal::UnknownQueue {
            queue: request.queue.clone(),
            known: if known.is_empty() {
                "no queues".into()
            } else {
                known.join(", ")
            },
        });
    };
    let profile = &profiles.0[index];
    if !profile.versions.is_empty() && !profile.versions.contains(&game.version) {
        return Err(QueueRefusal::Version {
            queue: profile.name.clone(),
            version: game.version.clone(),
        });
    }
    if request.players() > profile.team_max {
        return Err(QueueRefusal::PartyTooLarge {
            queue: profile.name.clone(),
            players: request.players(),
            max: profile.team_max,
        });
    }
    missing_attribute(profile, request).map_or(Ok(index), Err)
}

fn missing_attribute(profile: &QueueProfile, request: &QueueRequest) -> Option<QueueRefusal> {
    let attributes = &request.attributes;
    let missing = |attribute: &str, kind| {
        Some(QueueRefusal::MissingAttribute {
            queue: profile.name.clone(),
            attribute: attribute.to_owned(),
            kind,
        })
    };
    profile.rules.iter().find_map(|rule| match rule {
        Rule::Difference { attribute, .. } if !attributes.numbers.contains_key(attribute) => {
            missing(attribute, "numbers")
        }
        Rule::Equal { attribute } if !attributes.strings.contains_key(attribute) => {
            missing(attribute, "strings")
        }
        Rule::Intersect { attribute } if !attributes.sets.contains_key(attribute) => {
            missing(attribute, "sets")
        }
        Rule::Latency { .. } if attributes.latencies_ms.is_empty() => {
            missing("(a region)", "latencies_ms")
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn profiles() -> QueueProfiles {
        QueueProfiles::from_toml(
            r#"
[[queue]]
name = "ranked"
versions = ["1"]
teams = 2
team_size = { min = 2, max = 2 }
max_wait_secs = 60
[[queue.rules]]
kind = "difference"
attribute = "skill"
max = 100
"#,
        )
        .unwrap()
    }

    fn request(queue: &str) -> QueueRequest {
        let mut request = QueueRequest {
            queue: queue.into(),
            ..QueueRequest::default()
        };
        request.attributes.numbers.insert("skill".into(), 1000.0);
        request
    }

    #[test]
    fn a_ticket_joins_only_a_queue_it_fits() {
        let game = GameRef::new("g", "1");
        assert_eq!(admit(&profiles(), &game, &request("ranked")), Ok(0));
        assert!(matches!(
            admit(&profiles(), &game, &request("casual")),
            Err(QueueRefusal::UnknownQueue { known, .. }) if known == "ranked"
        ));
        assert!(matches!(
            admit(&profiles(), &GameRef::new("g", "2"), &request("ranked")),
            Err(QueueRefusal::Version { .. })
        ));
        let mut no_skill = request("ranked");
        no_skill.attributes.numbers.clear();
        assert!(matches!(
            admit(&profiles(), &game, &no_skill),
            Err(QueueRefusal::MissingAttribute {
                kind: "numbers",
                ..
            })
        ));
        let mut trio = request("ranked");
        trio.party = vec!["a".into(), "b".into(), "c".into()];
        assert!(matches!(
            admit(&profiles(), &game, &trio),
            Err(QueueRefusal::PartyTooLarge {
                players: 3,
                max: 2,
                ..
            })
        ));
    }

    #[test]
    fn the_typical_wait_follows_recent_matches() {
        let mut stats = QueueStats::default();
        stats.record_match(&[Duration::from_secs(10)]);
        assert_eq!(stats.typical_wait, Some(Duration::from_secs(10)));
        stats.record_match(&[Duration::from_secs(0), Duration::from_secs(0)]);
        assert_eq!(stats.matches, 2);
        assert_eq!(stats.matched_tickets, 3);
        assert!(stats.typical_wait.unwrap() < Duration::from_secs(7));
    }
}
