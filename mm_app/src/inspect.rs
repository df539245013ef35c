//! Live inspection over `bevy_remote` (JSON-RPC over HTTP, loopback by default).
//!
//! Every ticket, deployment and reservation component is registered for reflection, so
//! `world.query` returns them; `bevygap/summary` returns counts by state and seats per deployment:
//!
//! ```sh
//! curl -s -X POST http://127.0.0.1:15702 -d \
//!   '{"jsonrpc":"2.0","id":1,"method":"bevygap/summary"}'
//! curl -s -X POST http://127.0.0.1:15702 -d '{"jsonrpc":"2.0","id":2,"method":"world.query",
//!   "params":{"data":{"components":["bevygap_matchmaker::deployment::Seats"]}}}'
//! ```

use std::net::IpAddr;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_remote::http::RemoteHttpPlugin;
use bevy_remote::{BrpResult, RemotePlugin};
use serde_json::{Value, json};

use crate::deployment::{DeploymentId, DeploymentInfo, DeploymentState, Seats};
use crate::fleet_driver::Fleet;
use crate::seats::{LedgerReadiness, LedgerStats, SeatReservation};
use crate::ticket::TicketState;

/// The name of the summary method.
pub const SUMMARY_METHOD: &str = "bevygap/summary";

/// Where the inspection endpoint listens.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    /// Bind address (127.0.0.1 unless explicitly allowed otherwise).
    pub address: IpAddr,
    /// Port.
    pub port: u16,
}

/// Adds `bevy_remote` with the summary method.
pub struct InspectPlugin {
    /// Where to listen.
    pub config: InspectConfig,
}

impl Plugin for InspectPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            RemotePlugin::default().with_method_main(SUMMARY_METHOD, summary),
            RemoteHttpPlugin::default()
                .with_address(self.config.address)
                .with_port(self.config.port),
        ));
    }
}

/// What the summary reads: tickets, reservations, deployments and the fleet backend.
#[derive(SystemParam)]
pub struct SummaryParams<'w, 's> {
    tickets: Query<'w, 's, &'static TicketState>,
    taking: Query<'w, 's, &'static SeatReservation>,
    readiness: Res<'w, LedgerReadiness>,
    live: Option<Res<'w, crate::presence::LiveMatchmakers>>,
    stats: Res<'w, LedgerStats>,
    deployments: Query<
        'w,
        's,
        (
            &'static DeploymentId,
            &'static DeploymentState,
            &'static Seats,
            Option<&'static DeploymentInfo>,
        ),
    >,
    fleet: Option<Res<'w, Fleet>>,
}

impl SummaryParams<'_, '_> {
    /// Tickets and reservations by state, seats per deployment, and the fleet backend with the
    /// stops it has not yet seen confirmed.
    pub fn summary(&self) -> Value {
        let (mut queued, mut allocating, mut placed) = (0, 0, 0);
        for state in &self.tickets {
            match state {
                TicketState::Queued => queued += 1,
                TicketState::Allocating => allocating += 1,
                TicketState::Placed { .. } => placed += 1,
            }
        }
        let storing = self.taking.iter().count();
        let mut issued = 0;
        let list: Vec<Value> = self
            .deployments
            .iter()
            .map(|(id, state, seats, info)| {
                let reported = info.map_or(0, |i| i.reported_players);
                issued += seats.reserved;
                json!({
                    "id": id.0,
                    "state": format!("{state:?}").split_whitespace().next().unwrap_or_default(),
                    "game": info.map(|i| format!("{} {}", i.game.game, i.game.version)),
                    "address": info.map(|i| i.public_addr.to_string()),
                    "region": info.and_then(|i| i.region.clone()),
                    "capacity": seats.capacity,
                    "connected": seats.connected,
                    "reserved": seats.reserved,
                    "closing": seats.closing,
                    "free": seats.free(reported),
                })
            })
            .collect();
        let mut summary = json!({
            "tickets": { "queued": queued, "allocating": allocating, "placed": placed },
            "reservations": { "storing": storing, "issued": issued },
            "deployments": list,
            "ledger": {
                "ready": self.readiness.ready(),
                "seats_taken": self.stats.taken,
                "conflicts": self.stats.conflicts,
                "failed_writes": self.stats.failed,
            },
            "matchmakers": self.live.as_ref().map_or(1, |live| live.0),
        });
        if let Some(fleet) = &self.fleet {
            summary["fleet"] = json!({
                "backend": fleet.0.name(),
                "pending_stops": fleet.0.pending_stops(),
            });
        }
        summary
    }
}

/// The `bevygap/summary` method (see [`SummaryParams::summary`]).
pub fn summary(In(_): In<Option<Value>>, params: SummaryParams) -> BrpResult {
    Ok(params.summary())
}
