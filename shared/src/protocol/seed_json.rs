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

use super::channel::SessionInfo;
use super::{ErrorCode, GameRef};
use crate::error::ProtocolError;

/// The seed's request: which game and version the client runs, and (an addition to the seed's
/// protocol, optional) a signed player token from the game's backend:
/// `{"game":"bevygap-spaceships","version":"1","player_token":"eyJ…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRequest {
    /// The game and version.
    #[serde(flatten)]
    pub game: GameRef,
    /// The player token, when the matchmaker checks players.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_token: Option<String>,
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
}

impl SeedResponse {
    /// The `SessionReady` message for a session.
    pub fn ready(session: &SessionInfo) -> Self {
        Self::SessionReady {
            token: session.token_base64(),
            ip: session.ip.to_string(),
            port: session.port,
            cert_digest: session
                .cert_digest
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }
    }

    /// The `Error` message for a code and text.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Self {
        Self::Error(code.code(), text.into())
    }

    /// Whether this message ends the conversation.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::SessionReady { .. } | Self::Error(..))
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
    Ok(request)
}
