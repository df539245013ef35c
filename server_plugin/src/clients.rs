//! Who is connected: the connection-request gate, admitted clients as entities, their seats
//! taken and freed in the ledger (through the recorder task), and the player count derived
//! from those entities.

use std::sync::Arc;

use bevy::prelude::*;
use bevygap_shared::time::now_millis;
use lightyear::connection::shared::{ConnectionRequestHandler, DeniedReason};
use lightyear::prelude::server::*;
use lightyear::prelude::*;
use tokio::sync::{Notify, mpsc, watch};

use crate::admission::AdmissionDenied;
use crate::kv_tasks::{SeatCommand, SeatLost, SharedAdmission, lock};

/// The seat side of admission: the shared table, and the queue to the recorder task.
#[derive(Resource, Clone)]
pub(crate) struct Seating {
    /// The admission table (fed by the seat ledger watch).
    pub admission: SharedAdmission,
    /// Seat changes for the recorder task (queued until NATS is up: nobody is admitted before).
    pub seat_commands: mpsc::UnboundedSender<SeatCommand>,
}

/// Clients whose seat could not be taken in the ledger, reported by the recorder task.
#[derive(Resource)]
pub(crate) struct LostSeats(pub mpsc::UnboundedReceiver<SeatLost>);

/// Players connected now, counted from [`AdmittedClient`] entities, for the lease heartbeat.
#[derive(Resource)]
pub(crate) struct PlayerCount(pub watch::Sender<u32>);

/// Admits a client id only with a live, unused reservation (see
/// [`Admission::check`](crate::admission::Admission::check)). A client whose reservation is not
/// known yet rings `lookups`, so the seats are read from the ledger before its next attempt.
#[derive(Debug)]
pub(crate) struct ReservationGate {
    admission: SharedAdmission,
    lookups: Arc<Notify>,
}

impl ConnectionRequestHandler for ReservationGate {
    fn handle_request(&self, client_id: PeerId) -> Option<DeniedReason> {
        let PeerId::Netcode(id) = client_id else {
            return Some(DeniedReason::InvalidToken);
        };
        match lock(&self.admission).check(id, now_millis()) {
            Ok(()) => None,
            Err(denied) => {
                debug!("denied client {id}: {denied}");
                if matches!(denied, AdmissionDenied::NoReservation(_)) {
                    self.lookups.notify_one();
                }
                Some(match denied {
                    AdmissionDenied::AlreadyUsed(_) => DeniedReason::TokenAlreadyUsed,
                    _ => DeniedReason::InvalidToken,
                })
            }
        }
    }
}

/// The gate for a netcode server; it rings `lookups` for clients it does not know yet.
pub(crate) fn gate(admission: SharedAdmission, lookups: Arc<Notify>) -> Arc<ReservationGate> {
    Arc::new(ReservationGate { admission, lookups })
}

/// Connected players: admitted client entities that have not disconnected.
type Playing = (With<AdmittedClient>, Without<Disconnected>);

/// A client completed the handshake: verify its token's user data, consume its reservation,
/// record the connection. A client that fails the check is unlinked.
pub(crate) fn on_client_connected(
    trigger: On<Add, Connected>,
    clients: Query<(&RemoteId, Option<&TokenUserData>), With<ClientOf>>,
    playing: Query<(), Playing>,
    seating: Res<Seating>,
    mut commands: Commands,
) {
    let entity = trigger.event_target();
    let Ok((remote, user_data)) = clients.get(entity) else {
        return;
    };
    let PeerId::Netcode(client_id) = remote.0 else {
        return;
    };
    let data = user_data.and_then(|d| bevygap_shared::token_data::TokenUserData::decode(&d.0).ok());
    match lock(&seating.admission).admit(client_id, data.as_ref(), now_millis()) {
        Ok(admitted) => {
            // This client's marker lands with the next command flush: count it here.
            let players = playing.iter().count() + 1;
            info!(
                "bevygap: client {client_id} connected on seat {} ({players} players)",
                admitted.seat
            );
            commands.entity(entity).insert(AdmittedClient {
                client_id,
                seat: admitted.seat,
                team: data.as_ref().and_then(|d| d.team),
            });
            let _ = seating.seat_commands.send(SeatCommand::Opened {
                client_id,
                reservation_id: admitted.reservation_id,
                seat: admitted.seat,
                revision: admitted.revision,
            });
        }
        Err(denied) => {
            info!("bevygap: client {client_id} refused after connecting: {denied}");
            commands.trigger(Unlink {
                entity,
                reason: UnlinkReason::UserRequested(Some(denied.to_string())),
            });
        }
    }
}

/// Marks a client admitted through a reservation (so its disconnect frees its seat).
#[derive(Component, Debug, Clone, Copy)]
pub struct AdmittedClient {
    /// The netcode client id.
    pub client_id: u64,
    /// The seat it holds.
    pub seat: u32,
    /// Its team, when a matchmaking queue placed it (from the token's user data, which only the
    /// key holder can write).
    pub team: Option<u32>,
}

pub(crate) fn on_client_disconnected(
    trigger: On<Add, Disconnected>,
    clients: Query<&AdmittedClient>,
    playing: Query<(), Playing>,
    seating: Res<Seating>,
) {
    let Ok(admitted) = clients.get(trigger.event_target()) else {
        return;
    };
    let players = playing.iter().count();
    info!(
        "bevygap: client {} left ({players} players)",
        admitted.client_id
    );
    let _ = seating.seat_commands.send(SeatCommand::Closed {
        client_id: admitted.client_id,
        seat: admitted.seat,
    });
}

/// Lets go of clients whose seat could not be taken in the ledger (it lapsed or was closed
/// before they connected): keeping them would hold more players than the seats sold.
pub(crate) fn unlink_lost_seats(
    mut lost: ResMut<LostSeats>,
    clients: Query<(Entity, &AdmittedClient)>,
    mut commands: Commands,
) {
    while let Ok(seat) = lost.0.try_recv() {
        if let Some((entity, _)) = clients.iter().find(|(_, c)| c.client_id == seat.client_id) {
            commands.trigger(Unlink {
                entity,
                reason: UnlinkReason::UserRequested(Some(seat.to_string())),
            });
        }
    }
}

/// Publishes the player count for the lease heartbeat when it changes.
pub(crate) fn publish_player_count(playing: Query<(), Playing>, count: Res<PlayerCount>) {
    let players = u32::try_from(playing.iter().count()).unwrap_or(u32::MAX);
    count.0.send_if_modified(|current| {
        let changed = *current != players;
        *current = players;
        changed
    });
}
