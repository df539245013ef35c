//! The lease a game server holds in `{app}_leases` while it runs.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{CertDigest, KvRecord};
use crate::names::KeyToken;
use crate::protocol::queue::Attributes;
use crate::time::UnixMillis;

/// The transport a game server listens on (one per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Plain UDP netcode (native clients).
    #[default]
    Udp,
    /// WebTransport over QUIC (browsers and native), with a self-signed certificate.
    WebTransport,
}

/// Where a deployment runs, when known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Location {
    /// Region or city name used for placement (e.g. "eu-west", "Frankfurt").
    pub region: String,
    /// ISO country code, if known.
    pub country: Option<String>,
    /// Latitude in degrees, if known.
    pub latitude: Option<f64>,
    /// Longitude in degrees, if known.
    pub longitude: Option<f64>,
}

/// A game server's lease: written at start-up, refreshed by heartbeat, deleted on clean shutdown, and
/// dropped by NATS when the heartbeats stop (the bucket's max age).
///
/// Key: `{deployment_id}`. Sample value:
/// ```json
/// {"format":1,"kind":"lease","deployment_id":"local-1","game":"spaceships","game_version":"1",
///  "public_addr":"127.0.0.1:6420","fqdn":null,"transport":"udp","cert_digest":null,
///  "capacity":8,"players":2,"location":null,"started_at_ms":1700000000000,
///  "heartbeat_at_ms":1700000003000,"accepting":true}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentLease {
    /// The deployment id (a [`KeyToken`]), unique per server process.
    pub deployment_id: String,
    /// The game (app) name.
    pub game: String,
    /// The game version the server runs; clients of another version are not placed here.
    pub game_version: String,
    /// The address clients dial (public IP and external port).
    pub public_addr: SocketAddr,
    /// The host name clients may dial instead of the IP, if any.
    pub fqdn: Option<String>,
    /// The transport the server listens on.
    pub transport: Transport,
    /// The WebTransport certificate digest; required when `transport` is WebTransport.
    pub cert_digest: Option<CertDigest>,
    /// Seats in total.
    pub capacity: u32,
    /// Players connected now.
    pub players: u32,
    /// Where the server runs, if known.
    pub location: Option<Location>,
    /// When the server started.
    pub started_at_ms: UnixMillis,
    /// When this lease was last written.
    pub heartbeat_at_ms: UnixMillis,
    /// False while the server drains: no new players are placed.
    pub accepting: bool,
    /// Players the server asks a matchmaking queue for (backfill), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<LeaseBackfill>,
}

/// Players a running game server asks a matchmaking queue for: the seats to fill, each for a
/// team. Matchmakers fill exactly these seats, each by compare-and-set in the seat ledger, so two
/// matchmakers never fill one slot twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseBackfill {
    /// The queue whose tickets may fill the slots.
    pub queue: String,
    /// The open slots.
    pub slots: Vec<BackfillSlot>,
    /// The match's attributes, for the queue's rules (e.g. its skill).
    #[serde(default)]
    pub attributes: Attributes,
}

/// One open seat of a backfill, and the team its player joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillSlot {
    /// The seat index.
    pub seat: u32,
    /// The team (0-based).
    pub team: u32,
}

impl DeploymentLease {
    /// Seats not taken by connected players.
    pub fn free_seats(&self) -> u32 {
        self.capacity.saturating_sub(self.players)
    }
}

impl KvRecord for DeploymentLease {
    const KIND: &'static str = "lease";
    const FORMAT: u16 = 1;

    fn validate(&self) -> Result<(), String> {
        KeyToken::new("deployment id", self.deployment_id.as_str()).map_err(|e| e.to_string())?;
        if self.capacity == 0 {
            return Err("capacity is 0".into());
        }
        if self.transport == Transport::WebTransport && self.cert_digest.is_none() {
            return Err("a WebTransport server must publish its certificate digest".into());
        }
        if self.public_addr.port() == 0 {
            return Err("public port is 0".into());
        }
        if let Some(backfill) = &self.backfill {
            let mut seats = std::collections::BTreeSet::new();
            for slot in &backfill.slots {
                if slot.seat >= self.capacity || !seats.insert(slot.seat) {
                    return Err(format!(
                        "backfill seat {} is outside the capacity or named twice",
                        slot.seat
                    ));
                }
            }
            backfill
                .attributes
                .validate()
                .map_err(|e| format!("backfill: {e}"))?;
        }
        Ok(())
    }
}
