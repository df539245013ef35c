//! Who may connect: a client id with a live, unused reservation for this deployment.
//!
//! lightyear's connection-request handler is synchronous, so admission works from memory: the
//! reserved seats of this deployment arrive through a KV watch of the seat ledger, and every
//! admitted client id is remembered until its reservation would have expired, so a token is good
//! for one connection. An admitted client then takes its seat in the ledger (reserved →
//! connected, by compare-and-set on the revision admitted here).

use std::collections::HashMap;

use bevygap_shared::schema::Reservation;
use bevygap_shared::time::UnixMillis;
use bevygap_shared::token_data::TokenUserData;
use thiserror::Error;

/// Why a connection request was denied. The client (or whoever holds its token) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AdmissionDenied {
    /// No reservation for this client id on this deployment (never issued, or already lapsed).
    #[error("no reservation for client {0} on this server")]
    NoReservation(u64),
    /// The token was minted for another deployment.
    #[error("token of client {client_id} is for deployment `{deployment_id}`, not this one")]
    WrongDeployment {
        /// The client id.
        client_id: u64,
        /// The deployment the token names.
        deployment_id: String,
    },
    /// The reservation has expired.
    #[error("reservation of client {0} has expired")]
    Expired(u64),
    /// The token was already used for a connection.
    #[error("token of client {0} was already used")]
    AlreadyUsed(u64),
    /// The token's user data does not match the reservation (forged or stale).
    #[error("token of client {0} does not match its reservation")]
    Mismatch(u64),
}

/// What an admitted client was reserved as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The client id.
    pub client_id: u64,
    /// The reservation consumed.
    pub reservation_id: String,
    /// The seat it holds.
    pub seat: u32,
    /// The seat key's revision when admitted (the client's seat write expects it).
    pub revision: u64,
}

/// A reserved seat known to admission.
#[derive(Debug, Clone)]
struct Reserved {
    reservation: Reservation,
    seat: u32,
    revision: u64,
}

/// The admission table of one deployment.
#[derive(Debug, Clone)]
pub struct Admission {
    deployment_id: String,
    reservations: HashMap<u64, Reserved>,
    /// Which client holds each reserved seat (to forget it when the seat changes).
    seats: HashMap<u32, u64>,
    /// Client ids admitted, with the time after which their reservation can no longer be replayed.
    used: HashMap<u64, UnixMillis>,
    /// The newest revision applied per seat: the watch and a direct read of the ledger can
    /// deliver one seat's states out of order, and an older state never overwrites a newer one.
    revisions: HashMap<u32, u64>,
}

impl Admission {
    /// Seats reserved for a client that has not connected yet.
    pub fn reserved_seats(&self) -> impl Iterator<Item = u32> + '_ {
        self.seats.keys().copied()
    }

    /// An empty table for `deployment_id`.
    pub fn new(deployment_id: impl Into<String>) -> Self {
        Self {
            deployment_id: deployment_id.into(),
            reservations: HashMap::new(),
            seats: HashMap::new(),
            used: HashMap::new(),
            revisions: HashMap::new(),
        }
    }

    /// Records a seat reserved in the ledger at `revision` (ignores other deployments', and
    /// states older than one already applied to the seat).
    pub fn reservation_added(&mut self, seat: u32, revision: u64, reservation: Reservation) {
        if reservation.deployment_id != self.deployment_id || !self.advance(seat, revision) {
            return;
        }
        self.forget(seat);
        self.seats.insert(seat, reservation.client_id);
        self.reservations.insert(
            reservation.client_id,
            Reserved {
                reservation,
                seat,
                revision,
            },
        );
    }

    /// Forgets the reservation on `seat`: at `revision` the seat was freed, lapsed, or holds
    /// something else (a connected client, a stop). Ignored if the seat is known at a newer
    /// revision.
    pub fn seat_changed(&mut self, seat: u32, revision: u64) {
        if self.advance(seat, revision) {
            self.forget(seat);
        }
    }

    /// Whether `revision` is at least the newest applied to `seat` (and records it).
    fn advance(&mut self, seat: u32, revision: u64) -> bool {
        let newest = self.revisions.entry(seat).or_insert(revision);
        if *newest > revision {
            return false;
        }
        *newest = revision;
        true
    }

    fn forget(&mut self, seat: u32) {
        if let Some(client_id) = self.seats.remove(&seat)
            && self
                .reservations
                .get(&client_id)
                .is_some_and(|r| r.seat == seat)
        {
            self.reservations.remove(&client_id);
        }
    }

    /// Reservations known and not yet used.
    pub fn pending(&self) -> usize {
        self.reservations.len()
    }

    /// Checks a connection request without consuming anything (lightyear may ask more than once
    /// per handshake): the client id must hold a live, unused reservation for this deployment.
    pub fn check(&mut self, client_id: u64, now: UnixMillis) -> Result<(), AdmissionDenied> {
        self.used.retain(|_, until| *until > now);
        if self.used.contains_key(&client_id) {
            return Err(AdmissionDenied::AlreadyUsed(client_id));
        }
        let reservation = self
            .reservations
            .get(&client_id)
            .ok_or(AdmissionDenied::NoReservation(client_id))?;
        if reservation.reservation.is_expired(now) {
            return Err(AdmissionDenied::Expired(client_id));
        }
        Ok(())
    }

    /// Admits a connected client: checks again, verifies the token's user data against the
    /// reservation, and consumes it so the token cannot be used again.
    pub fn admit(
        &mut self,
        client_id: u64,
        user_data: Option<&TokenUserData>,
        now: UnixMillis,
    ) -> Result<Admitted, AdmissionDenied> {
        if let Some(data) = user_data
            && data.deployment_id != self.deployment_id
        {
            return Err(AdmissionDenied::WrongDeployment {
                client_id,
                deployment_id: data.deployment_id.clone(),
            });
        }
        self.check(client_id, now)?;
        let matches = self.reservations.get(&client_id).is_some_and(|r| {
            user_data.is_none_or(|d| d.reservation_id == r.reservation.reservation_id)
        });
        if !matches {
            return Err(AdmissionDenied::Mismatch(client_id));
        }
        let reserved = self
            .reservations
            .remove(&client_id)
            .ok_or(AdmissionDenied::NoReservation(client_id))?;
        self.seats.remove(&reserved.seat);
        // Remember the id past the reservation's expiry: the token itself dies then too.
        self.used.insert(
            client_id,
            reserved.reservation.expires_at_ms.saturating_add(60_000),
        );
        Ok(Admitted {
            client_id,
            reservation_id: reserved.reservation.reservation_id,
            seat: reserved.seat,
            revision: reserved.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_reserved_again_for_another_client_drops_the_first() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(2, 5, reservation(9, "dep-a"));
        table.reservation_added(2, 8, reservation(10, "dep-a"));
        assert_eq!(table.pending(), 1);
        assert_eq!(
            table.admit(9, None, 2_000),
            Err(AdmissionDenied::NoReservation(9))
        );
        assert_eq!(table.admit(10, None, 2_000).map(|a| a.revision), Ok(8));
    }

    fn reservation(client_id: u64, deployment: &str) -> Reservation {
        Reservation {
            reservation_id: format!("r-{client_id}"),
            deployment_id: deployment.into(),
            client_id,
            issued_at_ms: 1_000,
            expires_at_ms: 11_000,
        }
    }

    fn data(client_id: u64, deployment: &str) -> TokenUserData {
        TokenUserData {
            deployment_id: deployment.into(),
            reservation_id: format!("r-{client_id}"),
            expires_at_ms: 11_000,
            team: None,
        }
    }

    #[test]
    fn a_live_reservation_admits_once() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(3, 11, reservation(7, "dep-a"));
        let admitted = table.admit(7, Some(&data(7, "dep-a")), 2_000).unwrap();
        assert_eq!(admitted.reservation_id, "r-7");
        assert_eq!((admitted.seat, admitted.revision), (3, 11));
        assert_eq!(
            table.admit(7, Some(&data(7, "dep-a")), 2_001),
            Err(AdmissionDenied::AlreadyUsed(7))
        );
        // Even if the reservation reappears in KV (replayed watch), the id stays used.
        table.reservation_added(3, 11, reservation(7, "dep-a"));
        assert_eq!(
            table.admit(7, None, 2_002),
            Err(AdmissionDenied::AlreadyUsed(7))
        );
    }

    #[test]
    fn tokens_for_another_server_unknown_clients_and_expired_reservations_are_denied() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(0, 1, reservation(1, "dep-b"));
        table.reservation_added(1, 2, reservation(2, "dep-a"));
        assert!(matches!(
            table.admit(1, Some(&data(1, "dep-b")), 2_000),
            Err(AdmissionDenied::WrongDeployment { .. })
        ));
        assert_eq!(
            table.admit(1, None, 2_000),
            Err(AdmissionDenied::NoReservation(1))
        );
        assert_eq!(
            table.admit(3, None, 2_000),
            Err(AdmissionDenied::NoReservation(3))
        );
        assert_eq!(
            table.admit(2, Some(&data(2, "dep-a")), 11_000),
            Err(AdmissionDenied::Expired(2))
        );
    }

    #[test]
    fn user_data_must_match_the_reservation() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(0, 1, reservation(5, "dep-a"));
        let mut forged = data(5, "dep-a");
        forged.reservation_id = "r-other".into();
        assert_eq!(
            table.admit(5, Some(&forged), 2_000),
            Err(AdmissionDenied::Mismatch(5))
        );
        assert!(table.admit(5, Some(&data(5, "dep-a")), 2_000).is_ok());
    }

    #[test]
    fn checking_does_not_consume_but_admitting_does() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(0, 1, reservation(4, "dep-a"));
        assert!(table.check(4, 2_000).is_ok());
        assert!(
            table.check(4, 2_000).is_ok(),
            "lightyear may ask twice per handshake"
        );
        assert!(table.admit(4, Some(&data(4, "dep-a")), 2_000).is_ok());
        assert_eq!(table.check(4, 2_000), Err(AdmissionDenied::AlreadyUsed(4)));
    }

    #[test]
    fn reservations_whose_seat_changed_no_longer_admit() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(2, 5, reservation(9, "dep-a"));
        table.seat_changed(2, 6);
        assert_eq!(table.pending(), 0);
        assert_eq!(
            table.admit(9, None, 2_000),
            Err(AdmissionDenied::NoReservation(9))
        );
    }

    #[test]
    fn an_older_state_of_a_seat_never_overwrites_a_newer_one() {
        let mut table = Admission::new("dep-a");
        // A direct read saw the seat connected at 7; the watch then delivers the reservation at 5.
        table.seat_changed(1, 7);
        table.reservation_added(1, 5, reservation(3, "dep-a"));
        assert_eq!(
            table.check(3, 2_000),
            Err(AdmissionDenied::NoReservation(3))
        );
        // The watch reports the seat reserved at 8; a late read of revision 6 (free) changes nothing.
        table.reservation_added(1, 8, reservation(4, "dep-a"));
        table.seat_changed(1, 6);
        assert!(table.check(4, 2_000).is_ok());
    }
}
