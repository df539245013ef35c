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
    /// Seconds a token stays valid for its first connection.
    pub expire_seconds: i32,
    /// Seconds without packets before a netcode connection times out.
    pub timeout_seconds: i32,
}

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
        .expire_seconds(self.0.expire_seconds)
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
