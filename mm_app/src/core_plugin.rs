//! The matchmaker's core: tickets, deployments, reservations and their lifecycle rules.
//!
//! The core does no I/O. Endpoints, the KV bridge and the fleet driver write inbound
//! [`messages`](crate::messages); the core answers clients through each ticket's
//! [`TicketResponder`](crate::ticket::TicketResponder) and asks for effects with outbound messages.

use std::time::Duration;

use bevy::prelude::*;

use crate::deadlines::{Deadlines, track_ticket};
use bevygap_shared::protocol::GameRef;

use crate::deployment::{DeploymentId, DeploymentIndex, DeploymentInfo, DeploymentState, Seats};
use crate::seats::{LedgerReadiness, LedgerStats, SeatReservation, ledger_ready};
use crate::ticket::{Ticket, TicketIndex, TicketState};
use crate::tokens::{TokenConfig, TokenMinter};
use crate::{fleet_scaling, leases, placement, seats, ticket};

/// The core's rules, as numbers.
#[derive(Debug, Clone)]
pub struct PlacementConfig {
    /// The game (app) name served.
    pub app_name: String,
    /// The game versions served; a request for another is refused as unknown.
    pub app_versions: Vec<String>,
    /// A ticket not answered within this fails with a timeout.
    pub ticket_timeout: Duration,
    /// A seat reserved for a client that does not connect is released after this.
    pub reservation_ttl: Duration,
    /// A ready deployment with nobody on it for this long is stopped (scale to zero).
    pub empty_server_ttl: Duration,
    /// A deployment whose lease has not appeared this long after it was requested is stopped.
    pub allocation_timeout: Duration,
    /// Seats assumed for a deployment until its lease says otherwise.
    pub expected_capacity: u32,
    /// At most this many deployments starting at once.
    pub max_starting: usize,
    /// Whether empty deployments are stopped (false for fleets that never stop servers, such
    /// as the static fleet: theirs stay ready for the next player).
    pub scale_to_zero: bool,
    /// The matchmaking queues (`--queues`); none: every request is for a seat.
    pub queues: crate::queues::QueueProfiles,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            app_name: "bevygap-demo".into(),
            app_versions: vec!["1".into()],
            ticket_timeout: Duration::from_secs(60),
            reservation_ttl: Duration::from_secs(15),
            empty_server_ttl: Duration::from_secs(60),
            allocation_timeout: Duration::from_secs(120),
            expected_capacity: 8,
            max_starting: 4,
            scale_to_zero: true,
            queues: crate::queues::QueueProfiles::default(),
        }
    }
}

impl PlacementConfig {
    /// Whether this matchmaker serves the game and version.
    pub fn serves(&self, game: &GameRef) -> bool {
        game.game == self.app_name && self.app_versions.contains(&game.version)
    }
}

/// The core's configuration as a resource.
#[derive(Resource, Debug, Clone)]
pub struct Placement(pub PlacementConfig);

/// Set when something changed that may let a waiting ticket be placed.
#[derive(Resource, Debug, Default)]
pub struct PlacementDirty(pub bool);

/// The core's system sets, chained in this order in `Update`. `Place` and `Expire` wait until
/// the KV mirrors are complete ([`LedgerReadiness`]): a restarted matchmaker sells nothing
/// before it has seen every seat sold before.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoreSystems {
    /// Endpoints and bridges turn what arrived into inbound messages.
    Receive,
    /// Inbound messages update tickets, deployments and the seat mirror.
    Apply,
    /// Waiting tickets are placed on free seats or wait for new deployments.
    Place,
    /// Timeouts: tickets, empty and never-ready deployments.
    Expire,
    /// Effect plugins act on outbound messages and answer clients.
    Effects,
}

/// The core plugin: a documented config, the entities' lifecycle systems, no I/O.
#[derive(Debug, Clone)]
pub struct MatchmakerCorePlugin {
    /// Placement and lifecycle rules.
    pub placement: PlacementConfig,
    /// How connect tokens are minted.
    pub tokens: TokenConfig,
}

impl Plugin for MatchmakerCorePlugin {
    fn build(&self, app: &mut App) {
        crate::messages::add_messages(app);
        app.insert_resource(Placement(self.placement.clone()))
            .insert_resource(TokenMinter(self.tokens.clone()))
            .init_resource::<TicketIndex>()
            .init_resource::<DeploymentIndex>()
            .init_resource::<PlacementDirty>()
            .init_resource::<LedgerReadiness>()
            .init_resource::<LedgerStats>()
            .init_resource::<Deadlines<Ticket>>()
            .insert_resource(crate::queues::Queues::new(self.placement.queues.clone()))
            .init_resource::<crate::queues::matching::LastMatchPass>()
            .register_type::<crate::queues::Match>()
            .register_type::<crate::queues::MatchState>()
            .register_type::<crate::queues::MemberOf>()
            .register_type::<crate::queues::MatchMembers>()
            .register_type::<crate::queues::Team>()
            .register_type::<crate::queues::ServesMatch>()
            .register_type::<crate::queues::seating::MatchServer>()
            .register_type::<crate::queues::seating::MatchHost>()
            .register_type::<crate::queues::seating::LostSeatRace>()
            .register_type::<crate::queues::matching::BackfillSince>()
            .add_observer(track_ticket)
            .register_type::<Ticket>()
            .register_type::<TicketState>()
            .register_type::<DeploymentId>()
            .register_type::<DeploymentState>()
            .register_type::<DeploymentInfo>()
            .register_type::<Seats>()
            .register_type::<SeatReservation>()
            .register_type::<crate::seats::RetryAt>()
            .register_type::<LedgerReadiness>()
            .register_type::<LedgerStats>()
            .register_type::<Name>()
            .configure_sets(
                Update,
                (
                    CoreSystems::Receive,
                    CoreSystems::Apply,
                    CoreSystems::Place.run_if(ledger_ready),
                    CoreSystems::Expire,
                    CoreSystems::Effects,
                )
                    .chain(),
            )
            .add_systems(
                Update,
                (
                    (
                        ticket::spawn_tickets,
                        ticket::cancel_tickets,
                        seats::apply_ledger_sync,
                        leases::apply_leases,
                        seats::apply_seat_changes,
                        fleet_scaling::apply_allocations,
                        fleet_scaling::apply_ended_deployments,
                        seats::apply_stored_reservations,
                        crate::queues::seating::apply_match_seats,
                        seats::apply_closed_deployments,
                        fleet_scaling::apply_stop_failures,
                        crate::shutdown::drain_waiting_tickets,
                    )
                        .chain()
                        .in_set(CoreSystems::Apply),
                    (
                        placement::place_tickets,
                        fleet_scaling::request_deployments,
                        crate::queues::matching::match_queues,
                        crate::queues::seating::seat_matches,
                    )
                        .chain()
                        .in_set(CoreSystems::Place),
                    (
                        ticket::expire_tickets,
                        seats::release_retries,
                        fleet_scaling::stop_idle_deployments.run_if(ledger_ready),
                    )
                        .chain()
                        .in_set(CoreSystems::Expire),
                ),
            );
    }

    fn finish(&self, app: &mut App) {
        // Deadlines are measured on virtual time. The app sleeps between events, so one update can
        // follow the last after seconds: never let Bevy clamp that gap, or timeouts would stretch.
        if let Some(mut time) = app.world_mut().get_resource_mut::<Time<Virtual>>() {
            time.set_max_delta(Duration::from_secs(24 * 3600));
        }
    }
}
