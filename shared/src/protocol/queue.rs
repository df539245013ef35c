//! Asking a matchmaking queue for a match: the queue's name, the ticket's attributes (skill,
//! mode, languages, pings per region) and its party (players who stay on one team).
//!
//! A request without a queue keeps the seat flow: any free seat on a server of the game's
//! version. With a queue, the matchmaker groups tickets into matches by the queue's profile.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Most players on one ticket.
pub const MAX_PARTY: usize = 8;
/// Most entries in each kind of attribute.
pub const MAX_ATTRIBUTES: usize = 16;
/// Most members of one set attribute.
pub const MAX_SET_MEMBERS: usize = 16;
/// Longest attribute name, string value, set member, region or player name, in bytes.
pub const MAX_NAME: usize = 64;

/// What a ticket brings to a queue's rules. Every map is keyed by the attribute's name in the
/// queue profile. (No field is skipped when empty: the simplenet channel's bincode needs them all.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Numbers, for difference rules (skill, rating).
    #[serde(default)]
    pub numbers: BTreeMap<String, f64>,
    /// Strings, for equality rules (mode, map).
    #[serde(default)]
    pub strings: BTreeMap<String, String>,
    /// Sets, for intersection rules (languages, regions).
    #[serde(default)]
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Round trips the client measured, in milliseconds per region, for latency rules.
    #[serde(default)]
    pub latencies_ms: BTreeMap<String, u32>,
}

/// A request to a matchmaking queue.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// The queue's name, as in the matchmaker's `--queues` file.
    pub queue: String,
    /// The ticket's attributes.
    #[serde(default)]
    pub attributes: Attributes,
    /// The players on this ticket, for a party (kept on one team, each gets a connect token);
    /// empty for one player.
    #[serde(default)]
    pub party: Vec<String>,
}

impl QueueRequest {
    /// How many players the ticket holds (at least one).
    pub fn players(&self) -> u32 {
        u32::try_from(self.party.len().max(1)).unwrap_or(u32::MAX)
    }

    /// Checks the request's sizes and values; the client is at fault when this fails.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        check_name("queue", "the queue name", &self.queue)?;
        if self.party.len() > MAX_PARTY {
            return Err(invalid(
                "party",
                format!(
                    "a party holds at most {MAX_PARTY} players, not {}",
                    self.party.len()
                ),
            ));
        }
        for player in &self.party {
            check_name("party", "a player name", player)?;
        }
        self.attributes.validate()
    }
}

impl Attributes {
    /// Checks counts, lengths and that numbers are finite.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let counts = [
            ("numbers", self.numbers.len()),
            ("strings", self.strings.len()),
            ("sets", self.sets.len()),
            ("latencies_ms", self.latencies_ms.len()),
        ];
        for (kind, count) in counts {
            if count > MAX_ATTRIBUTES {
                return Err(invalid(
                    "attributes",
                    format!("at most {MAX_ATTRIBUTES} {kind} attributes, not {count}"),
                ));
            }
        }
        for (name, value) in &self.numbers {
            check_name("attributes", "an attribute name", name)?;
            if !value.is_finite() {
                return Err(invalid(
                    "attributes",
                    format!("attribute {name} is not a finite number"),
                ));
            }
        }
        for (name, value) in &self.strings {
            check_name("attributes", "an attribute name", name)?;
            check_name("attributes", "a string value", value)?;
        }
        for (name, members) in &self.sets {
            check_name("attributes", "an attribute name", name)?;
            if members.len() > MAX_SET_MEMBERS {
                return Err(invalid(
                    "attributes",
                    format!(
                        "set attribute {name} has {} members, at most {MAX_SET_MEMBERS}",
                        members.len()
                    ),
                ));
            }
            for member in members {
                check_name("attributes", "a set member", member)?;
            }
        }
        for region in self.latencies_ms.keys() {
            check_name("attributes", "a region", region)?;
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: String) -> ProtocolError {
    ProtocolError::InvalidField { field, reason }
}

/// A name or value: not empty, at most [`MAX_NAME`] bytes, no control characters.
fn check_name(field: &'static str, what: &str, value: &str) -> Result<(), ProtocolError> {
    if value.is_empty() {
        return Err(invalid(field, format!("{what} is empty")));
    }
    if value.len() > MAX_NAME {
        return Err(invalid(
            field,
            format!("{what} is {} bytes, at most {MAX_NAME}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, format!("{what} holds a control character")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_request_reads_from_json_with_only_the_queue_required() {
        let request: QueueRequest = serde_json::from_str(r#"{"queue":"duel"}"#).unwrap();
        assert_eq!(request.players(), 1);
        request.validate().unwrap();
        let request: QueueRequest = serde_json::from_str(
            r#"{"queue":"2v2","party":["ann","bob"],"attributes":{"numbers":{"skill":1200},
                "strings":{"mode":"ranked"},"sets":{"languages":["en","fr"]},
                "latencies_ms":{"eu":30}}}"#,
        )
        .unwrap();
        assert_eq!(request.players(), 2);
        request.validate().unwrap();
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let unknown = serde_json::from_str::<QueueRequest>(r#"{"queue":"q","skill":3}"#);
        assert!(unknown.is_err(), "unknown fields are refused");
        let mut big_party = QueueRequest {
            queue: "q".into(),
            ..QueueRequest::default()
        };
        big_party.party = (0..9).map(|i| format!("p{i}")).collect();
        assert!(matches!(
            big_party.validate(),
            Err(ProtocolError::InvalidField { field: "party", .. })
        ));
        let mut nan = QueueRequest {
            queue: "q".into(),
            ..QueueRequest::default()
        };
        nan.attributes.numbers.insert("skill".into(), f64::NAN);
        assert!(nan.validate().is_err());
        let empty = QueueRequest::default();
        assert!(empty.validate().is_err(), "a queue name is required");
        let mut long = QueueRequest {
            queue: "q".into(),
            ..QueueRequest::default()
        };
        long.attributes
            .strings
            .insert("mode".into(), "x".repeat(MAX_NAME + 1));
        assert!(long.validate().is_err());
    }
}
