//! A seat of a deployment: the unit the seat ledger sells, once.

use serde::{Deserialize, Serialize};

use super::{KvRecord, Reservation};
use crate::names::KeyToken;
use crate::time::UnixMillis;

/// One seat of one deployment, as held in the seat ledger (`{app}_reservations`, key
/// `{deployment_id}.{seat}` with `seat < capacity`).
///
/// The ledger is the truth about who holds which seat. A seat is taken only by a revision-checked
/// write: the matchmaker creates the key expecting the revision it last saw (0 when the key never
/// existed), so of two writers racing for one seat exactly one wins. Because keys only exist for
/// `seat < capacity`, a deployment can never be sold more seats than it has.
///
/// Sample values (one per [`SeatHolder`]):
/// ```json
/// {"format":1,"kind":"seat","deployment_id":"local-1","seat":3,"state":"reserved",
///  "reservation_id":"r-5f2c","client_id":1234567,"issued_at_ms":1700000000000,
///  "expires_at_ms":1700000015000}
/// {"format":1,"kind":"seat","deployment_id":"local-1","seat":3,"state":"connected",
///  "reservation_id":"r-5f2c","client_id":1234567,"connected_at_ms":1700000001000}
/// {"format":1,"kind":"seat","deployment_id":"local-1","seat":0,"state":"closing",
///  "since_ms":1700000060000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatRecord {
    /// The deployment the seat is on.
    pub deployment_id: String,
    /// The seat's index, below the deployment's capacity.
    pub seat: u32,
    /// Who holds it.
    #[serde(flatten)]
    pub holder: SeatHolder,
}

/// Who holds a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SeatHolder {
    /// A connect token was issued for it. Written by a matchmaker with a per-key TTL a little past
    /// `expires_at_ms`, so an unused seat returns to the pool by itself.
    Reserved {
        /// Unique id of the reservation (also in the token's user data).
        reservation_id: String,
        /// The netcode client id in the token.
        client_id: u64,
        /// When the token was issued.
        issued_at_ms: UnixMillis,
        /// After this instant the game server refuses the token.
        expires_at_ms: UnixMillis,
    },
    /// The client connected. Written by the game server over the reservation (same key, checked
    /// revision, no TTL); deleted when the client leaves.
    Connected {
        /// The reservation the client's token was issued under.
        reservation_id: String,
        /// The netcode client id.
        client_id: u64,
        /// When the client connected.
        connected_at_ms: UnixMillis,
    },
    /// Taken by a matchmaker that is stopping the deployment (scale to zero): a stop closes every
    /// free seat first, so no other matchmaker can sell one meanwhile. Written with a TTL, so a
    /// stop that dies half-way gives its seats back.
    Closing {
        /// When the stop began.
        since_ms: UnixMillis,
    },
}

impl SeatRecord {
    /// The reservation this seat holds, while it is reserved and not yet used.
    pub fn reservation(&self) -> Option<Reservation> {
        match &self.holder {
            SeatHolder::Reserved {
                reservation_id,
                client_id,
                issued_at_ms,
                expires_at_ms,
            } => Some(Reservation {
                reservation_id: reservation_id.clone(),
                deployment_id: self.deployment_id.clone(),
                client_id: *client_id,
                issued_at_ms: *issued_at_ms,
                expires_at_ms: *expires_at_ms,
            }),
            _ => None,
        }
    }

    /// The netcode client id holding the seat, if a client holds it.
    pub fn client_id(&self) -> Option<u64> {
        match &self.holder {
            SeatHolder::Reserved { client_id, .. } | SeatHolder::Connected { client_id, .. } => {
                Some(*client_id)
            }
            SeatHolder::Closing { .. } => None,
        }
    }
}

impl KvRecord for SeatRecord {
    const KIND: &'static str = "seat";
    const FORMAT: u16 = 1;

    fn validate(&self) -> Result<(), String> {
        KeyToken::new("deployment id", self.deployment_id.as_str()).map_err(|e| e.to_string())?;
        match &self.holder {
            SeatHolder::Reserved {
                reservation_id,
                issued_at_ms,
                expires_at_ms,
                ..
            } => {
                KeyToken::new("reservation id", reservation_id.as_str())
                    .map_err(|e| e.to_string())?;
                if expires_at_ms < issued_at_ms {
                    return Err("expires before it was issued".into());
                }
            }
            SeatHolder::Connected { reservation_id, .. } => {
                KeyToken::new("reservation id", reservation_id.as_str())
                    .map_err(|e| e.to_string())?;
            }
            SeatHolder::Closing { .. } => {}
        }
        Ok(())
    }
}
