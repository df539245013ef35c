//! Deployments known from their leases: created, refreshed and dropped as KV says.

use bevy::prelude::*;

use crate::core_plugin::PlacementDirty;
use crate::deployment::{
    DeploymentId, DeploymentIndex, DeploymentInfo, DeploymentState, Seats, StartingFor,
};
use crate::messages::{LeaseChanged, PurgeDeployment};
use crate::seats::SeatReservation;
use crate::ticket::{PendingSession, TicketState};

/// Creates, refreshes and removes deployments from lease events, in the order KV wrote them.
#[allow(clippy::too_many_arguments)]
pub fn apply_leases(
    mut commands: Commands,
    mut changes: MessageReader<LeaseChanged>,
    mut index: ResMut<DeploymentIndex>,
    mut dirty: ResMut<PlacementDirty>,
    mut purge: MessageWriter<PurgeDeployment>,
    mut deployments: Query<(
        Option<&mut DeploymentState>,
        &mut Seats,
        Option<&mut DeploymentInfo>,
    )>,
    taking: Query<(Entity, &SeatReservation)>,
    mut tickets: Query<&mut TicketState>,
    time: Res<Time>,
    metrics: Option<Res<crate::metrics::Metrics>>,
) {
    // Deployments spawned by this pass (their commands are not applied yet), and those removed.
    let mut spawned: Vec<Entity> = Vec::new();
    for change in changes.read() {
        match change {
            LeaseChanged::Updated(lease) => {
                if let Some(metrics) = &metrics {
                    let lag =
                        bevygap_shared::time::now_millis().saturating_sub(lease.heartbeat_at_ms);
                    metrics.watch_lag(std::time::Duration::from_millis(lag));
                }
                let info = DeploymentInfo::from_lease(lease);
                let known = index.0.get(&lease.deployment_id).copied();
                match known.map(|e| (e, deployments.get_mut(e))) {
                    Some((entity, Ok((state, mut seats, existing)))) => {
                        match state {
                            Some(mut state) => {
                                if let DeploymentState::Starting { since } = *state {
                                    let took = time.elapsed().saturating_sub(since);
                                    info!(
                                        "deployment `{}` ready after {took:.1?}",
                                        lease.deployment_id
                                    );
                                    if let Some(metrics) = &metrics {
                                        metrics.allocated(took);
                                    }
                                    *state = DeploymentState::Ready;
                                }
                            }
                            None => {
                                info!(
                                    "deployment `{}` ready at {} ({} seats; some already held)",
                                    lease.deployment_id, lease.public_addr, lease.capacity
                                );
                                commands.entity(entity).insert((
                                    DeploymentState::Ready,
                                    Name::new(format!("deployment {}", lease.deployment_id)),
                                ));
                            }
                        }
                        if seats.capacity != lease.capacity {
                            seats.capacity = lease.capacity;
                        }
                        match existing {
                            Some(mut existing) => *existing = info,
                            None => {
                                commands.entity(entity).insert(info).remove::<StartingFor>();
                            }
                        }
                    }
                    Some((entity, Err(_))) if spawned.contains(&entity) => {
                        // A heartbeat right after the first lease, in the same frame.
                        commands.entity(entity).insert(info);
                    }
                    _ => {
                        info!(
                            "deployment `{}` ready at {} ({} seats)",
                            lease.deployment_id, lease.public_addr, lease.capacity
                        );
                        let entity = commands
                            .spawn((
                                Name::new(format!("deployment {}", lease.deployment_id)),
                                DeploymentId(lease.deployment_id.clone()),
                                DeploymentState::Ready,
                                info,
                                Seats::with_capacity(lease.capacity),
                            ))
                            .id();
                        index.0.insert(lease.deployment_id.clone(), entity);
                        spawned.push(entity);
                    }
                }
            }
            LeaseChanged::Removed { deployment_id } => {
                let Some(entity) = index.0.remove(deployment_id) else {
                    continue;
                };
                info!("deployment `{deployment_id}` is gone (lease removed or lapsed)");
                // Seats being taken there are lost: queue their tickets again.
                for (held_entity, held) in &taking {
                    if held.deployment != entity {
                        continue;
                    }
                    if let Ok(mut state) = tickets.get_mut(held.ticket) {
                        *state = TicketState::Queued;
                        commands.entity(held.ticket).remove::<PendingSession>();
                    }
                    commands.entity(held_entity).despawn();
                }
                spawned.retain(|e| *e != entity);
                commands.entity(entity).despawn();
                purge.write(PurgeDeployment {
                    deployment_id: deployment_id.clone(),
                });
            }
        }
        dirty.0 = true;
    }
}
