//! Who may connect: a client id with a live, unused reservation for this deployment.
//!
//! lightyear's connection-request handler is synchronous, so admission works from memory: the
//! reservations for this deployment arrive through a KV watch, and every admitted client id is
//! remembered until its reservation would have expired, so a token is good for one connection.

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
}

/// The admission table of one deployment.
#[derive(Debug, Clone)]
pub struct Admission {
    deployment_id: String,
    reservations: HashMap<u64, Reservation>,
    /// Client ids admitted, with the time after which their reservation can no longer be replayed.
    used: HashMap<u64, UnixMillis>,
}

impl Admission {
    /// An empty table for `deployment_id`.
    pub fn new(deployment_id: impl Into<String>) -> Self {
        Self {
            deployment_id: deployment_id.into(),
            reservations: HashMap::new(),
            used: HashMap::new(),
        }
    }

    /// Records a reservation seen in KV (ignores those for other deployments).
    pub fn reservation_added(&mut self, reservation: Reservation) {
        if reservation.deployment_id == self.deployment_id {
            self.reservations.insert(reservation.client_id, reservation);
        }
    }

    /// Forgets a reservation removed from KV (consumed, or lapsed).
    pub fn reservation_removed(&mut self, client_id: u64) {
        self.reservations.remove(&client_id);
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
        if reservation.is_expired(now) {
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
        let matches = self
            .reservations
            .get(&client_id)
            .is_some_and(|r| user_data.is_none_or(|d| d.reservation_id == r.reservation_id));
        if !matches {
            return Err(AdmissionDenied::Mismatch(client_id));
        }
        let reservation = self
            .reservations
            .remove(&client_id)
            .ok_or(AdmissionDenied::NoReservation(client_id))?;
        // Remember the id past the reservation's expiry: the token itself dies then too.
        self.used
            .insert(client_id, reservation.expires_at_ms.saturating_add(60_000));
        Ok(Admitted {
            client_id,
            reservation_id: reservation.reservation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn a_live_reservation_admits_once() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(reservation(7, "dep-a"));
        let admitted = table.admit(7, Some(&data(7, "dep-a")), 2_000).unwrap();
        assert_eq!(admitted.reservation_id, "r-7");
        assert_eq!(
            table.admit(7, Some(&data(7, "dep-a")), 2_001),
            Err(AdmissionDenied::AlreadyUsed(7))
        );
        // Even if the reservation reappears in KV (replayed watch), the id stays used.
        table.reservation_added(reservation(7, "dep-a"));
        assert_eq!(
            table.admit(7, None, 2_002),
            Err(AdmissionDenied::AlreadyUsed(7))
        );
    }

    #[test]
    fn tokens_for_another_server_unknown_clients_and_expired_reservations_are_denied() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(reservation(1, "dep-b"));
        table.reservation_added(reservation(2, "dep-a"));
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
        table.reservation_added(reservation(5, "dep-a"));
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
        table.reservation_added(reservation(4, "dep-a"));
        assert!(table.check(4, 2_000).is_ok());
        assert!(
            table.check(4, 2_000).is_ok(),
            "lightyear may ask twice per handshake"
        );
        assert!(table.admit(4, Some(&data(4, "dep-a")), 2_000).is_ok());
        assert_eq!(table.check(4, 2_000), Err(AdmissionDenied::AlreadyUsed(4)));
    }

    #[test]
    fn removed_reservations_no_longer_admit() {
        let mut table = Admission::new("dep-a");
        table.reservation_added(reservation(9, "dep-a"));
        table.reservation_removed(9);
        assert_eq!(table.pending(), 0);
        assert_eq!(
            table.admit(9, None, 2_000),
            Err(AdmissionDenied::NoReservation(9))
        );
    }
}
