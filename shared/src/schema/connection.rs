//! An active connection: a player connected to a game server.

use serde::{Deserialize, Serialize};

use super::KvRecord;
use crate::names::KeyToken;
use crate::time::UnixMillis;

/// Written by the game server when a client connects, deleted when it disconnects. The matchmaker
/// counts seats from these and stops servers that stay empty.
///
/// Key: `{deployment_id}.{client_id}`. Sample value:
/// ```json
/// {"format":1,"kind":"connection","deployment_id":"local-1","client_id":1234567,
///  "reservation_id":"r-5f2c","connected_at_ms":1700000001000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveConnection {
    /// The deployment the client is connected to.
    pub deployment_id: String,
    /// The netcode client id.
    pub client_id: u64,
    /// The reservation the client's token was issued under.
    pub reservation_id: String,
    /// When the client connected.
    pub connected_at_ms: UnixMillis,
}

impl KvRecord for ActiveConnection {
    const KIND: &'static str = "connection";
    const FORMAT: u16 = 1;

    fn validate(&self) -> Result<(), String> {
        KeyToken::new("deployment id", self.deployment_id.as_str()).map_err(|e| e.to_string())?;
        Ok(())
    }
}
