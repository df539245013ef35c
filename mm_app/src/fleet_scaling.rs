//! Scaling the fleet: asking for servers when waiting tickets outnumber the seats coming, and
//! stopping servers that stay empty (scale to zero, through the seat ledger).

use std::collections::HashMap;

use bevy::prelude::*;
use bevygap_shared::protocol::channel::MatchStage;
use bevygap_shared::protocol::{ErrorCode, GameRef};

use crate::core_plugin::{Placement, PlacementDirty};
use crate::deployment::{
    DeploymentId, DeploymentIndex, DeploymentInfo, DeploymentState, Seats, StartingFor,
};
use crate::fleet::{AllocationRequest, FleetError};
use crate::messages::{
    AllocateDeployment, AllocationFinished, CloseDeployment, DeploymentEnded, LeaseChanged,
    StopDeployment, StopFailed,
};
use crate::ticket::{Ticket, TicketResponder, TicketState, fail_ticket, send_status};

/// Player IPs passed to the fleet for placement at most (the provider needs a sample, not all).
const MAX_PLACEMENT_IPS: usize = 32;

/// Asks the fleet for new deployments when waiting tickets outnumber the seats being started.
pub fn request_deployments(
    mut commands: Commands,
    mut allocate: MessageWriter<AllocateDeployment>,
    placement: Res<Placement>,
    time: Res<Time>,
    mut tickets: Query<
        (&Ticket, &mut TicketState, &TicketResponder),
        Without<crate::seats::RetryAt>,
    >,
    starting: Query<
        (&StartingFor, &Seats, &DeploymentState),
        Without<crate::queues::seating::MatchHost>,
    >,
) {
    let mut waiting: HashMap<GameRef, (u32, Vec<std::net::IpAddr>, Option<String>)> =
        HashMap::new();
    for (ticket, state, _) in &tickets {
        if matches!(*state, TicketState::Queued | TicketState::Allocating) {
            // Look up before inserting: cloning the game per ticket per frame adds up.
            if !waiting.contains_key(&ticket.game) {
                waiting.insert(ticket.game.clone(), Default::default());
            }
            let Some(entry) = waiting.get_mut(&ticket.game) else {
                continue;
            };
            entry.0 += 1;
            if entry.1.len() < MAX_PLACEMENT_IPS {
                entry.1.extend(ticket.client_ip);
            }
            if entry.2.is_none() {
                entry.2 = ticket.region_pings.first().map(|p| p.region.clone());
            }
        }
    }
    if waiting.is_empty() {
        return;
    }
    let mut starting_count = starting
        .iter()
        .filter(|(_, _, s)| matches!(s, DeploymentState::Starting { .. }))
        .count();
    for (game, (count, client_ips, region_hint)) in waiting {
        let mut seats_coming: u32 = starting
            .iter()
            .filter(|(g, _, s)| g.0 == game && matches!(s, DeploymentState::Starting { .. }))
            .map(|(_, seats, _)| seats.capacity)
            .sum();
        while count > seats_coming && starting_count < placement.0.max_starting {
            let capacity = placement.0.expected_capacity.max(1);
            let deployment = commands
                .spawn((
                    Name::new(format!(
                        "starting deployment for {} {}",
                        game.game, game.version
                    )),
                    StartingFor(game.clone()),
                    DeploymentState::Starting {
                        since: time.elapsed(),
                    },
                    Seats::with_capacity(capacity),
                ))
                .id();
            info!(
                "no free seat for {} {}: asking the fleet for a server",
                game.game, game.version
            );
            allocate.write(AllocateDeployment {
                deployment,
                request: AllocationRequest {
                    game: game.clone(),
                    client_ips: client_ips.clone(),
                    region_hint: region_hint.clone(),
                },
            });
            seats_coming += capacity;
            starting_count += 1;
        }
    }
    for (ticket, mut state, responder) in &mut tickets {
        if *state == TicketState::Queued {
            *state = TicketState::Allocating;
            send_status(
                responder,
                &ticket.id,
                MatchStage::Allocating,
                "Starting a game server",
            );
        }
    }
}

/// Records which deployment the fleet started, or fails the tickets that were waiting on it
/// once no other server is starting for their game (several failing in one frame count as
/// none starting).
#[allow(clippy::too_many_arguments)]
pub fn apply_allocations(
    mut commands: Commands,
    mut finished: MessageReader<AllocationFinished>,
    mut index: ResMut<DeploymentIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut seats: Query<&mut Seats>,
    starting: Query<(Entity, &StartingFor)>,
    tickets: Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
) {
    let mut failed: Vec<(Entity, GameRef, ErrorCode, String)> = Vec::new();
    for AllocationFinished { deployment, result } in finished.read() {
        dirty.0 = true;
        match result {
            Ok(allocation) => {
                if index.0.contains_key(&allocation.deployment_id) {
                    // Its lease arrived first: that entity is the deployment now.
                    commands.entity(*deployment).despawn();
                    continue;
                }
                info!(
                    "fleet is starting deployment `{}`",
                    allocation.deployment_id
                );
                index
                    .0
                    .insert(allocation.deployment_id.clone(), *deployment);
                commands.entity(*deployment).insert((
                    DeploymentId(allocation.deployment_id.clone()),
                    Name::new(format!("deployment {}", allocation.deployment_id)),
                ));
                if let (Some(capacity), Ok(mut seats)) =
                    (allocation.expected_capacity, seats.get_mut(*deployment))
                {
                    seats.capacity = capacity;
                }
            }
            Err(error) => {
                let Ok((_, game)) = starting.get(*deployment) else {
                    continue;
                };
                commands.entity(*deployment).despawn();
                warn!(
                    "fleet could not start a server for {} {}: {error}",
                    game.0.game, game.0.version
                );
                let code = match error {
                    FleetError::NoCapacity(_) => ErrorCode::NoCapacity,
                    _ => ErrorCode::FleetError,
                };
                failed.push((
                    *deployment,
                    game.0.clone(),
                    code,
                    format!("no game server available: {error}"),
                ));
            }
        }
    }
    let gone: Vec<Entity> = failed.iter().map(|(e, ..)| *e).collect();
    let mut answered: Vec<GameRef> = Vec::new();
    for (_, game, code, text) in failed {
        if answered.contains(&game) {
            continue;
        }
        answered.push(game.clone());
        fail_tickets_waiting_for(
            &mut commands,
            &starting,
            &tickets,
            &gone,
            &game,
            code,
            &text,
        );
    }
}

/// Fails the tickets waiting for a server of `game` when none is starting for it any more
/// besides those in `failed` (another starting server may still serve them).
fn fail_tickets_waiting_for(
    commands: &mut Commands,
    starting: &Query<(Entity, &StartingFor)>,
    tickets: &Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
    failed: &[Entity],
    game: &GameRef,
    code: ErrorCode,
    text: &str,
) {
    if starting
        .iter()
        .any(|(e, g)| !failed.contains(&e) && g.0 == *game)
    {
        return;
    }
    for (entity, ticket, state, responder) in tickets {
        if *state == TicketState::Allocating && ticket.game == *game {
            fail_ticket(commands, entity, ticket, responder, code, text.to_owned());
        }
    }
}

/// A server that ended while starting: forget it and tell its waiting players why at once,
/// instead of at the allocation timeout. One that ended after registering is dropped as if its
/// lease were gone (players still waiting for a seat there are queued again).
#[allow(clippy::too_many_arguments)]
pub fn apply_ended_deployments(
    mut commands: Commands,
    mut ended: MessageReader<DeploymentEnded>,
    mut gone: MessageWriter<LeaseChanged>,
    mut dirty: ResMut<PlacementDirty>,
    index: Res<DeploymentIndex>,
    states: Query<&DeploymentState>,
    starting: Query<(Entity, &StartingFor)>,
    tickets: Query<(Entity, &Ticket, &TicketState, &TicketResponder)>,
) {
    for DeploymentEnded {
        deployment_id,
        reason,
    } in ended.read()
    {
        let Some(&entity) = index.0.get(deployment_id) else {
            continue;
        };
        if !matches!(states.get(entity), Ok(DeploymentState::Starting { .. })) {
            // Its lease would linger until its TTL: forget it now, as if the lease were gone,
            // so no new player is sent to a dead server.
            warn!("deployment `{deployment_id}` ended ({reason}); dropping its seats now");
            gone.write(LeaseChanged::Removed {
                deployment_id: deployment_id.clone(),
            });
            continue;
        }
        warn!(
            "deployment `{deployment_id}` ended while starting ({reason}); check the game server's log"
        );
        if let Ok((_, game)) = starting.get(entity) {
            fail_tickets_waiting_for(
                &mut commands,
                &starting,
                &tickets,
                &[entity],
                &game.0.clone(),
                ErrorCode::FleetError,
                &format!(
                    "the game server `{deployment_id}` stopped while starting ({reason}); try again"
                ),
            );
        }
        commands.entity(entity).despawn();
        dirty.0 = true;
    }
}

/// Scale to zero: a ready deployment empty past its TTL has its seats closed in the ledger
/// ([`CloseDeployment`]) and is stopped once they all are; one that never became ready is
/// stopped and forgotten. Fleets that do not stop servers (static) keep them all.
pub fn stop_idle_deployments(
    mut commands: Commands,
    mut dirty: ResMut<PlacementDirty>,
    mut close: MessageWriter<CloseDeployment>,
    mut stop: MessageWriter<StopDeployment>,
    placement: Res<Placement>,
    time: Res<Time>,
    mut deployments: Query<(
        Entity,
        &DeploymentId,
        &mut DeploymentState,
        &mut Seats,
        Option<&DeploymentInfo>,
    )>,
) {
    let now = time.elapsed();
    for (entity, id, mut state, mut seats, info) in &mut deployments {
        match *state {
            DeploymentState::Ready if placement.0.scale_to_zero => {
                let reported = info.map_or(0, |i| i.reported_players);
                if !seats.is_empty(reported) {
                    seats.empty_since = None;
                    continue;
                }
                let since = *seats.empty_since.get_or_insert(now);
                if now.saturating_sub(since) >= placement.0.empty_server_ttl {
                    info!(
                        "deployment `{}` empty for {}s: closing its seats to stop it",
                        id.0,
                        placement.0.empty_server_ttl.as_secs()
                    );
                    *state = DeploymentState::Closing;
                    close.write(CloseDeployment {
                        deployment: entity,
                        deployment_id: id.0.clone(),
                        seats: seats.free_seats(),
                    });
                }
            }
            DeploymentState::Starting { since }
                if now.saturating_sub(since) >= placement.0.allocation_timeout =>
            {
                warn!(
                    "deployment `{}` did not register within {}s: stopping it; check its logs and NATS settings",
                    id.0,
                    placement.0.allocation_timeout.as_secs()
                );
                // Forget it now: it holds no players, and waiting tickets may ask for another.
                stop.write(StopDeployment {
                    deployment_id: id.0.clone(),
                    reason: "never became ready",
                });
                commands.entity(entity).despawn();
                dirty.0 = true;
            }
            _ => {}
        }
    }
}

/// A stop that failed for good: the server still runs, so it serves players again (its closed
/// seats lapse in the ledger) instead of staying `Stopping` forever.
pub fn apply_stop_failures(
    mut failures: MessageReader<StopFailed>,
    mut dirty: ResMut<PlacementDirty>,
    index: Res<DeploymentIndex>,
    mut deployments: Query<(&mut DeploymentState, &mut Seats)>,
) {
    for StopFailed {
        deployment_id,
        reason,
    } in failures.read()
    {
        let Some(Ok((mut state, mut seats))) =
            index.0.get(deployment_id).map(|e| deployments.get_mut(*e))
        else {
            continue;
        };
        if *state == DeploymentState::Stopping {
            warn!(
                "deployment `{deployment_id}` could not be stopped ({reason}); it serves players again until it is empty past its TTL"
            );
            *state = DeploymentState::Ready;
            seats.empty_since = None;
            dirty.0 = true;
        }
    }
}
