//! The seed-compatible JSON messages of `/matchmaker/ws`.
//!
//! The client sends one text frame, `{"game":"bevygap-spaceships","version":"1"}`; the matchmaker
//! answers with a stream of text frames and then closes normally:
//!
//! ```text
//! "Acknowledged"
//! {"SessionRequestAccepted":"t-6b1f..."}
//! {"ProgressReport":"Starting a game server"}
//! {"SessionReady":{"token":"TkVUQ09ERSAx...","ip":"127.0.0.1","port":6420,"cert_digest":"e376..."}}
//! ```
//!
//! or, on failure, `{"Error":[404,"unknown game"]}`.

use serde::{Deserialize, Serialize};

use super::channel::MatchedSessions;
use super::channel::SessionInfo;
use super::queue::{Attributes, QueueRequest};
use super::{ErrorCode, GameRef};
use crate::error::ProtocolError;

/// The seed's request: which game and version the client runs, and (additions to the seed's
/// protocol, all optional) a signed player token from the game's backend and a matchmaking
/// queue with the ticket's attributes and party:
/// `{"game":"bevygap-spaceships","version":"1","player_token":"eyJ…",
///   "queue":"ranked-2v2","attributes":{"numbers":{"skill":1200}},"party":["ann","bob"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRequest {
    /// The game and version.
    #[serde(flatten)]
    pub game: GameRef,
    /// The player token, when the matchmaker checks players.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_token: Option<String>,
    /// The matchmaking queue; without one, the request is for any free seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The ticket's attributes, for the queue's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
    /// The players of a party (kept on one team); empty for one player.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub party: Vec<String>,
}

impl SeedRequest {
    /// The queue request, when the client named a queue.
    pub fn queue_request(&self) -> Option<QueueRequest> {
        self.queue.as_ref().map(|queue| QueueRequest {
            queue: queue.clone(),
            attributes: self.attributes.clone().unwrap_or_default(),
            party: self.party.clone(),
        })
    }
}

/// The messages the matchmaker sends on `/matchmaker/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeedResponse {
    /// The request parsed.
    Acknowledged,
    /// A ticket was created, with its id.
    SessionRequestAccepted(String),
    /// Progress text for the player.
    ProgressReport(String),
    /// The session: connect now.
    SessionReady {
        /// The connect token, standard base64.
        token: String,
        /// The server's IP.
        ip: String,
        /// The server's port.
        port: u16,
        /// The WebTransport certificate digest (lowercase hex), empty for UDP servers.
        cert_digest: String,
    },
    /// The request failed: `[code, text]`.
    Error(u16, String),
    /// A queue matched the ticket: its team, and a session per player of its party (the
    /// requester first), all on one server:
    /// `{"MatchReady":{"team":0,"teams":2,"sessions":[{"token":"…","ip":"…","port":6420,"cert_digest":""}]}}`.
    MatchReady {
        /// The ticket's team (0-based).
        team: u32,
        /// Teams in the match.
        teams: u32,
        /// One session per player.
        sessions: Vec<SeedSession>,
    },
}

/// One player's session in a [`SeedResponse::MatchReady`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSession {
    /// The connect token, standard base64.
    pub token: String,
    /// The server's IP.
    pub ip: String,
    /// The server's port.
    pub port: u16,
    /// The WebTransport certificate digest (lowercase hex), empty for UDP servers.
    pub cert_digest: String,
}

impl SeedSession {
    fn of(session: &SessionInfo) -> Self {
        Self {
            token: session.token_base64(),
            ip: session.ip.to_string(),
            port: session.port,
            cert_digest: session
                .cert_digest
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }
    }
}

impl SeedResponse {
    /// The `SessionReady` message for a session.
    pub fn ready(session: &SessionInfo) -> Self {
        let SeedSession {
            token,
            ip,
            port,
            cert_digest,
        } = SeedSession::of(session);
        Self::SessionReady {
            token,
            ip,
            port,
            cert_digest,
        }
    }

    /// The `MatchReady` message for a queue's match.
    pub fn matched(matched: &MatchedSessions) -> Self {
        Self::MatchReady {
            team: matched.team,
            teams: matched.teams,
            sessions: matched.sessions.iter().map(SeedSession::of).collect(),
        }
    }

    /// The `Error` message for a code and text.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Self {
        Self::Error(code.code(), text.into())
    }

    /// Whether this message ends the conversation.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::SessionReady { .. } | Self::Error(..) | Self::MatchReady { .. }
        )
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Only strings and numbers: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a frame sent by the matchmaker (used by clients and tests).
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }
}

/// Parses and validates the client's request frame, refusing frames over `max_len` bytes.
pub fn parse_request(text: &str, max_len: usize) -> Result<SeedRequest, ProtocolError> {
    if text.len() > max_len {
        return Err(ProtocolError::TooLarge {
            len: text.len(),
            max: max_len,
        });
    }
    let request: SeedRequest =
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    request.game.validate()?;
    if let Some(queue) = request.queue_request() {
        queue.validate()?;
    } else if request.attributes.is_some() || !request.party.is_empty() {
        return Err(ProtocolError::InvalidField {
            field: "queue",
            reason: "attributes and a party need a queue".into(),
        });
    }
    Ok(request)
}
