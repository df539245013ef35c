//! Which game and version a client runs.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Longest game name or version accepted.
pub const MAX_GAME_FIELD_LEN: usize = 64;

/// A game name and version, as sent by a client. Validate with [`GameRef::validate`] before use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct GameRef {
    /// The game (app) name, e.g. `bevygap-spaceships`.
    pub game: String,
    /// The game version, e.g. `1` or `0.3.2`.
    pub version: String,
}

impl GameRef {
    /// Builds a game reference.
    pub fn new(game: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            game: game.into(),
            version: version.into(),
        }
    }

    /// Checks both fields are 1 to [`MAX_GAME_FIELD_LEN`] printable ASCII characters.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        check_field("game", &self.game)?;
        check_field("version", &self.version)
    }
}

fn check_field(field: &'static str, value: &str) -> Result<(), ProtocolError> {
    let invalid = |reason: String| ProtocolError::InvalidField { field, reason };
    if value.is_empty() {
        return Err(invalid("empty".into()));
    }
    if value.len() > MAX_GAME_FIELD_LEN {
        return Err(invalid(format!(
            "{} bytes, at most {MAX_GAME_FIELD_LEN}",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(invalid(format!("contains {c:?}")));
    }
    Ok(())
}
