//! A queue ticket shared by the matchmakers of an app (`{app}_queue_tickets`, one key per ticket):
//! the matchmaker its client is connected to (the owner) publishes it, any matchmaker may put it
//! in a match by claiming it with compare-and-set, and the one that claimed it writes back the
//! sessions (or the failure) for the owner to send to its client.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{CertDigest, KvRecord, Transport};
use crate::names::KeyToken;
use crate::protocol::channel::{MatchError, SessionInfo};
use crate::protocol::queue::{MAX_PARTY, QueueRequest};

/// The largest pooled ticket a reader accepts: a party's sessions carry one 2048-byte connect
/// token each (base64), more than the other records' limit.
pub const MAX_POOLED_TICKET_BYTES: usize = 48 * 1024;

/// A queue ticket in the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PooledTicket {
    /// The ticket id (`t-` and 16 hex digits); also its key.
    pub ticket_id: String,
    /// The presence id of the matchmaker the client waits on (`mm-` and 16 hex digits).
    pub owner: String,
    /// The game.
    pub game: String,
    /// The client's game version.
    pub version: String,
    /// What the client asked for: queue, attributes and party.
    pub request: QueueRequest,
    /// When the ticket joined its queue, in Unix milliseconds (orders tickets across matchmakers).
    pub enqueued_at_ms: u64,
    /// Where it stands.
    pub state: PoolState,
}

/// Where a pooled ticket stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum PoolState {
    /// Waiting for a match; any matchmaker may claim it.
    Waiting,
    /// Put in a match by `by`, which is finding its server and seats.
    Claimed {
        /// The claiming matchmaker's presence id.
        by: String,
        /// The match id (`m-` and 16 hex digits), for logs.
        match_id: String,
    },
    /// Matched and seated: the owner sends these sessions to its client, then deletes the key.
    Matched {
        /// The ticket's team (0-based).
        team: u32,
        /// Teams in the match.
        teams: u32,
        /// One session per player of the ticket.
        sessions: Vec<PooledSession>,
    },
    /// The match failed: the owner sends this error to its client, then deletes the key.
    Failed(MatchError),
}

/// A session as the pool carries it: [`SessionInfo`] with its connect token in base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledSession {
    /// The ticket this session answers.
    pub ticket_id: String,
    /// The connect token, standard base64.
    pub connect_token: String,
    /// The game server's address.
    pub addr: std::net::SocketAddr,
    /// The transport the server listens on.
    pub transport: Transport,
    /// The WebTransport certificate digest, for WebTransport servers.
    pub cert_digest: Option<CertDigest>,
}

impl std::fmt::Debug for PooledSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token lets its holder take the seat: never in a log line.
        f.debug_struct("PooledSession")
            .field("ticket_id", &self.ticket_id)
            .field("connect_token", &"<redacted>")
            .field("addr", &self.addr)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl From<&SessionInfo> for PooledSession {
    fn from(session: &SessionInfo) -> Self {
        Self {
            ticket_id: session.ticket_id.clone(),
            connect_token: session.token_base64(),
            addr: session.server_addr(),
            transport: session.transport,
            cert_digest: session.cert_digest,
        }
    }
}

impl PooledSession {
    /// The session to send to the client; `None` when the token is not base64.
    pub fn to_session(&self) -> Option<SessionInfo> {
        let connect_token = base64::engine::general_purpose::STANDARD
            .decode(&self.connect_token)
            .ok()?;
        Some(SessionInfo {
            ticket_id: self.ticket_id.clone(),
            connect_token,
            ip: self.addr.ip(),
            port: self.addr.port(),
            transport: self.transport,
            cert_digest: self.cert_digest,
        })
    }
}

impl PooledTicket {
    /// The same ticket in another state.
    pub fn with_state(&self, state: PoolState) -> Self {
        Self {
            state,
            ..self.clone()
        }
    }

    /// Whether `instance` holds the claim on this ticket.
    pub fn claimed_by(&self, instance: &str) -> bool {
        matches!(&self.state, PoolState::Claimed { by, .. } if by == instance)
    }
}

impl KvRecord for PooledTicket {
    const KIND: &'static str = "pooled_ticket";
    const FORMAT: u16 = 1;
    const MAX_BYTES: usize = MAX_POOLED_TICKET_BYTES;

    fn validate(&self) -> Result<(), String> {
        KeyToken::new("ticket id", self.ticket_id.as_str()).map_err(|e| e.to_string())?;
        KeyToken::new("owner", self.owner.as_str()).map_err(|e| e.to_string())?;
        self.request.validate().map_err(|e| e.to_string())?;
        if let PoolState::Matched {
            team,
            teams,
            sessions,
        } = &self.state
        {
            if team >= teams {
                return Err(format!("team {team} of {teams} teams"));
            }
            if sessions.is_empty() || sessions.len() > MAX_PARTY {
                return Err(format!("{} sessions for one ticket", sessions.len()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::SchemaError;
    use crate::schema::{decode, encode};

    fn ticket(state: PoolState) -> PooledTicket {
        PooledTicket {
            ticket_id: "t-0000000000000001".into(),
            owner: "mm-00000000000000aa".into(),
            game: "g".into(),
            version: "1".into(),
            request: QueueRequest {
                queue: "duel".into(),
                ..QueueRequest::default()
            },
            enqueued_at_ms: 1_700_000_000_000,
            state,
        }
    }

    fn session() -> SessionInfo {
        SessionInfo {
            ticket_id: "t-0000000000000001".into(),
            connect_token: vec![7; 2048],
            ip: [127, 0, 0, 1].into(),
            port: 6420,
            transport: Transport::Udp,
            cert_digest: None,
        }
    }

    #[test]
    fn a_party_of_eight_with_its_tokens_fits_and_round_trips() {
        let sessions = vec![PooledSession::from(&session()); MAX_PARTY];
        let mut matched = ticket(PoolState::Matched {
            team: 1,
            teams: 2,
            sessions,
        });
        matched.request.party = (0..MAX_PARTY).map(|i| format!("p{i}")).collect();
        let bytes = encode(&matched);
        assert!(bytes.len() < MAX_POOLED_TICKET_BYTES, "{}", bytes.len());
        let back = decode::<PooledTicket>(&bytes).unwrap();
        assert_eq!(back, matched);
        let PoolState::Matched { sessions, .. } = &back.state else {
            panic!("{back:?}")
        };
        assert_eq!(sessions[0].to_session().unwrap(), session());
    }

    #[test]
    fn a_debug_print_never_shows_a_token() {
        let shown = format!("{:?}", PooledSession::from(&session()));
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("BwcH"), "{shown}");
    }

    #[test]
    fn bad_records_are_typed_schema_errors() {
        let mut bad_id = ticket(PoolState::Waiting);
        bad_id.ticket_id = "t.1".into();
        let wrong_team = ticket(PoolState::Matched {
            team: 2,
            teams: 2,
            sessions: vec![PooledSession::from(&session())],
        });
        let no_sessions = ticket(PoolState::Matched {
            team: 0,
            teams: 2,
            sessions: Vec::new(),
        });
        for record in [bad_id, wrong_team, no_sessions] {
            assert!(
                matches!(
                    decode::<PooledTicket>(&encode(&record)),
                    Err(SchemaError::Invalid {
                        kind: "pooled_ticket",
                        ..
                    })
                ),
                "{record:?}"
            );
        }
        let huge = vec![b' '; MAX_POOLED_TICKET_BYTES + 1];
        assert!(matches!(
            decode::<PooledTicket>(&huge),
            Err(SchemaError::TooLarge { .. })
        ));
    }
}
