//! A reservation: a connect token issued for a seat, awaiting the game server's confirmation.

use serde::{Deserialize, Serialize};

use super::KvRecord;
use crate::names::KeyToken;
use crate::time::UnixMillis;

/// What a game server's admission needs to know of a reserved seat: read from the
/// [`SeatRecord`](super::SeatRecord) of the seat ledger ([`SeatRecord::reservation`](super::SeatRecord::reservation)).
///
/// Its own JSON form (format 1, below) was the ledger's value before seats had indices; it is kept
/// for tools that read it. Sample value:
/// ```json
/// {"format":1,"kind":"reservation","reservation_id":"r-5f2c","deployment_id":"local-1",
///  "client_id":1234567,"issued_at_ms":1700000000000,"expires_at_ms":1700000015000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Unique id of this reservation (also carried in the token's user data).
    pub reservation_id: String,
    /// The deployment the seat is on.
    pub deployment_id: String,
    /// The netcode client id in the token.
    pub client_id: u64,
    /// When the token was issued.
    pub issued_at_ms: UnixMillis,
    /// After this instant the server refuses the reservation and the matchmaker frees the seat.
    pub expires_at_ms: UnixMillis,
}

impl Reservation {
    /// Whether the reservation has expired at `now`.
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self.expires_at_ms
    }
}

impl KvRecord for Reservation {
    const KIND: &'static str = "reservation";
    const FORMAT: u16 = 1;

    fn validate(&self) -> Result<(), String> {
        KeyToken::new("deployment id", self.deployment_id.as_str()).map_err(|e| e.to_string())?;
        KeyToken::new("reservation id", self.reservation_id.as_str()).map_err(|e| e.to_string())?;
        if self.expires_at_ms < self.issued_at_ms {
            return Err("expires before it was issued".into());
        }
        Ok(())
    }
}
