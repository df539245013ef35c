//! Connecting straight to a game server in local mode (`example_server --local --dev`), without a
//! matchmaker: the client mints its own connect token with the public all-zero key, then connects
//! exactly as with a session the matchmaker sent.
//!
//! ```no_run
//! use bevygap_client_plugin::prelude::*;
//! use bevygap_shared::schema::Transport;
//!
//! let config = BevygapClientConfig {
//!     direct: Some(DirectServer {
//!         addr: "127.0.0.1:6420".parse().unwrap(),
//!         transport: Transport::Udp,
//!         cert_digest: None,
//!         protocol_id: 7,
//!     }),
//!     ..Default::default()
//! };
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::error::ProtocolError;
use bevygap_shared::protocol::channel::SessionInfo;
use bevygap_shared::schema::{CertDigest, Transport};
use lightyear::netcode::ConnectToken;

use crate::matchmaking::{ClientSettings, ReceivedSession};
use crate::state::BevygapClientState;

/// The netcode key of a server in local mode: all zeros, public (anyone can mint tokens with it,
/// which is why servers accept it only with `--dev`).
pub const DEV_KEY: [u8; 32] = [0; 32];

/// Seconds without packets before the netcode connection times out (the matchmaker's default).
const TIMEOUT_SECS: i32 = 10;

/// A game server in local mode to connect to directly, instead of asking a matchmaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectServer {
    /// The address the server listens on (its `--local-addr`).
    pub addr: SocketAddr,
    /// The server's transport (its `--transport`).
    pub transport: Transport,
    /// For WebTransport: the certificate digest the server logs at start (64 hex characters,
    /// colons allowed).
    pub cert_digest: Option<String>,
    /// The game's lightyear protocol id (the server's `--lightyear-protocol-id` or default).
    pub protocol_id: u64,
}

/// Why no token could be made for a [`DirectServer`]: the configuration is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectError {
    /// The certificate digest is not a SHA-256 digest.
    #[error("the direct server's certificate digest is unusable: {0}")]
    CertDigest(#[source] ProtocolError),
    /// lightyear could not build the token.
    #[error("could not make a connect token for the direct server: {0}")]
    Token(String),
}

impl DirectServer {
    /// A session for `client_id`, as the matchmaker would send it: a token signed with
    /// [`DEV_KEY`], valid for `connect_timeout` and half a minute more.
    pub fn session(
        &self,
        client_id: u64,
        connect_timeout: Duration,
    ) -> Result<SessionInfo, DirectError> {
        let cert_digest = self
            .cert_digest
            .as_deref()
            .map(str::parse::<CertDigest>)
            .transpose()
            .map_err(DirectError::CertDigest)?;
        let expire_secs = i32::try_from(connect_timeout.as_secs())
            .unwrap_or(i32::MAX)
            .saturating_add(30);
        let token = ConnectToken::build(self.addr, self.protocol_id, client_id, DEV_KEY)
            .expire_seconds(expire_secs)
            .timeout_seconds(TIMEOUT_SECS)
            .generate()
            .map_err(|e| DirectError::Token(e.to_string()))?
            .try_into_bytes()
            .map_err(|e| DirectError::Token(e.to_string()))?;
        Ok(SessionInfo {
            ticket_id: "direct".into(),
            connect_token: token.to_vec(),
            ip: self.addr.ip(),
            port: self.addr.port(),
            transport: self.transport,
            cert_digest,
        })
    }
}

/// Mints a session for `server` with a random client id and hands it to the connection systems
/// (what `bevygap_connect_client` does with [`BevygapClientConfig::direct`] set).
///
/// [`BevygapClientConfig::direct`]: crate::config::BevygapClientConfig::direct
pub(crate) fn start_direct(world: &mut World, server: &DirectServer) {
    let connect_timeout = world.resource::<ClientSettings>().0.connect_timeout;
    match server.session(rand::random::<u64>(), connect_timeout) {
        Ok(session) => {
            info!(
                "bevygap: connecting directly to {} (local mode, no matchmaker)",
                server.addr
            );
            world.insert_resource(ReceivedSession(session));
            *world.resource_mut::<BevygapClientState>() = BevygapClientState::Connecting;
        }
        Err(error) => {
            warn!("bevygap: {error}");
            *world.resource_mut::<BevygapClientState>() =
                BevygapClientState::Failed(error.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn server(transport: Transport, cert_digest: Option<&str>) -> DirectServer {
        DirectServer {
            addr: "127.0.0.1:6420".parse().unwrap(),
            transport,
            cert_digest: cert_digest.map(str::to_owned),
            protocol_id: 7,
        }
    }

    #[test]
    fn a_direct_session_carries_a_token_for_the_server_and_its_digest() {
        let digest = "ab".repeat(32);
        let session = server(Transport::WebTransport, Some(&digest))
            .session(42, Duration::from_secs(15))
            .unwrap();
        assert_eq!(session.server_addr(), "127.0.0.1:6420".parse().unwrap());
        assert_eq!(session.transport, Transport::WebTransport);
        assert_eq!(session.cert_digest.unwrap().to_string(), digest);
        let token = ConnectToken::try_from_bytes(&session.connect_token).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(token.expire_timestamp() >= now + 15);
    }

    #[test]
    fn a_bad_certificate_digest_is_a_typed_error() {
        let error = server(Transport::WebTransport, Some("not hex"))
            .session(1, Duration::from_secs(15))
            .unwrap_err();
        assert!(matches!(error, DirectError::CertDigest(_)), "{error:?}");
    }
}
