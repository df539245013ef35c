//! Minting lightyear netcode connect tokens in-process.

use std::net::SocketAddr;

use bevy::prelude::*;
use bevygap_shared::token_data::TokenUserData;
use lightyear_netcode::ConnectToken;

use bevygap_shared::private_key::PrivateKey;

/// How tokens are minted.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The lightyear protocol id the game servers use.
    pub protocol_id: u64,
    /// The key shared with the game servers.
    pub private_key: PrivateKey,
    /// Seconds a token stays valid for its first connection (its reservation's lifetime). The
    /// netcode token itself lives [`LATE_ANSWER_SECS`] longer, so a client that comes late is
    /// told `Denied` by the game server instead of being left to time out.
    pub expire_seconds: i32,
    /// Seconds without packets before a netcode connection times out.
    pub timeout_seconds: i32,
}

/// How long after its reservation lapsed a token still gets an answer from the game server
/// (`Denied`: the reservation is gone); after that netcode ignores it, as the protocol says.
pub const LATE_ANSWER_SECS: i32 = 30;

/// Mints connect tokens. A resource of the matchmaker.
#[derive(Resource, Debug, Clone)]
pub struct TokenMinter(pub TokenConfig);

/// Why a token could not be minted (ours: bad ids or a netcode failure).
#[derive(Debug, thiserror::Error)]
#[error("could not mint a connect token: {0}")]
pub struct MintError(String);

impl TokenMinter {
    /// A token for `client_id` to connect to `server`, carrying `data`.
    pub fn mint(
        &self,
        server: SocketAddr,
        client_id: u64,
        data: &TokenUserData,
    ) -> Result<Vec<u8>, MintError> {
        let user_data = data.encode().map_err(|e| MintError(e.to_string()))?;
        let token = ConnectToken::build(
            server,
            self.0.protocol_id,
            client_id,
            *self.0.private_key.expose(),
        )
        .expire_seconds(self.0.expire_seconds.saturating_add(LATE_ANSWER_SECS))
        .timeout_seconds(self.0.timeout_seconds)
        .user_data(user_data)
        .generate()
        .map_err(|e| MintError(e.to_string()))?;
        let bytes = token
            .try_into_bytes()
            .map_err(|e| MintError(e.to_string()))?;
        Ok(bytes.to_vec())
    }
}
