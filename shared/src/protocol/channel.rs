//! The `bevy_simplenet` channel between `bevygap_client_plugin` and the matchmaker.
//!
//! 1. The client connects with a [`ClientHello`] (game, version, build info).
//! 2. It sends a [`MatchRequest`] as a simplenet *request*.
//! 3. The matchmaker pushes [`ServerMsg::Status`] while it places the ticket or prepares a server.
//! 4. It answers the request with a [`MatchResult`]: a [`SessionInfo`] or a [`MatchError`].
//! 5. The client may send [`ClientMsg::Cancel`] at any time; disconnecting cancels too.

use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::queue::QueueRequest;
use super::{ErrorCode, GameRef};
use crate::schema::{CertDigest, Transport};

/// The protocol version baked into simplenet server and client factories. Bump on incompatible
/// change: simplenet refuses clients of another version.
pub const CHANNEL_PROTOCOL_VERSION: &str = "bevygap-2";

/// The channel pack tying the message types together.
#[derive(Debug, Clone)]
pub struct MatchmakerChannel;

impl bevy_simplenet::ChannelPack for MatchmakerChannel {
    type ConnectMsg = ClientHello;
    type ServerMsg = ServerMsg;
    type ServerResponse = MatchResult;
    type ClientMsg = ClientMsg;
    type ClientRequest = MatchRequest;
}

/// Sent by the client when it connects (and again on each reconnect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// The game and version the client runs.
    pub game: GameRef,
    /// Free text about the client build (platform, commit), for logs.
    pub client_build: String,
}

/// How the client wants to be matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum MatchMode {
    /// Any free seat on a server of the same game and version (the seed's behaviour).
    #[default]
    Seat,
    /// A match from a matchmaking queue: teams, a party, rules over the attributes.
    Queue(QueueRequest),
}

/// A measured round trip to a region, for placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPing {
    /// Region name as fleets report it.
    pub region: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: u32,
}

/// Asks for a match. Answered with a [`MatchResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MatchRequest {
    /// The matching mode.
    pub mode: MatchMode,
    /// Region pings, best first, if the client measured any.
    pub region_pings: Vec<RegionPing>,
    /// A signed player token from the game's own backend, when the matchmaker checks players.
    pub player_token: Option<String>,
}

/// One-shot messages from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// Cancel the pending match request.
    Cancel,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchStage {
    /// Accepted, waiting to be placed.
    Queued,
    /// A server is being started for this ticket.
    Allocating,
    /// A seat is reserved; the result follows.
    Placed,
}

/// A progress update pushed while a request is pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchStatus {
    /// The ticket id (also in logs).
    pub ticket_id: String,
    /// Where the ticket stands.
    pub stage: MatchStage,
    /// Human-readable progress text, suitable to show to the player.
    pub text: String,
}

/// One-shot messages from the matchmaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Progress of the pending request.
    Status(MatchStatus),
}

/// Everything a client needs to connect to its game server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The ticket this session answers.
    pub ticket_id: String,
    /// The lightyear netcode connect token (2048 bytes).
    pub connect_token: Vec<u8>,
    /// The game server's public IP.
    pub ip: IpAddr,
    /// The game server's public port.
    pub port: u16,
    /// The transport the server listens on.
    pub transport: Transport,
    /// The WebTransport certificate digest, for WebTransport servers.
    pub cert_digest: Option<CertDigest>,
}

impl SessionInfo {
    /// The server address to dial.
    pub fn server_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The connect token as standard base64, as the seed's JSON carries it.
    pub fn token_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.connect_token)
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl MatchError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for MatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}): {}",
            self.code.code(),
            self.code,
            self.message
        )
    }
}

/// The answer to a [`MatchRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchResult {
    /// A seat is reserved: connect now, before the token expires.
    Ready(SessionInfo),
    /// No session; see the error.
    Failed(MatchError),
    /// A queue matched the ticket: its team and a session per player of its party (the requester
    /// first), all on one game server.
    Matched(MatchedSessions),
}

/// What a ticket matched by a queue receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedSessions {
    /// The ticket's team (0-based).
    pub team: u32,
    /// Teams in the match.
    pub teams: u32,
    /// One session per player of the ticket, in the order of its party (the requester first).
    pub sessions: Vec<SessionInfo>,
}
