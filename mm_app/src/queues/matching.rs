//! The matching system: each queue's waiting tickets grouped into matches by [`form_matches`],
//! within a time budget per frame. A match is an entity; its tickets point at it ([`MemberOf`])
//! with their [`Team`]. Tickets that waited their queue's max wait fail; the others hear their
//! position, estimated wait and widened windows as they change.

use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::channel::MatchStage;
use bevygap_shared::protocol::{ErrorCode, GameRef};

use super::matcher::{Budget, Waiting, form_matches};
use super::pool::{Pooled, RemoteTicket, TicketPool};
use super::seating::{BackfillFor, ServesMatch};
use super::tickets::{QueueTicket, Queues};
use crate::core_plugin::Placement;
use crate::deployment::{DeploymentInfo, DeploymentState, Seats};
use crate::presence::LiveInstances;
use crate::ticket::{Ticket, TicketResponder, TicketState, fail_ticket, send_status};
use bevygap_shared::schema::LeaseBackfill;

/// How often queues are matched when no ticket joined (windows widen with time).
pub const QUEUE_TICK: Duration = Duration::from_millis(100);

/// The time one frame may spend matching, over all queues.
pub const MATCH_BUDGET: Duration = Duration::from_millis(1);

/// The least time between two progress messages to one ticket.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A match: tickets of one queue that play together on one server.
#[derive(Component, Debug, Clone, Reflect)]
#[reflect(Component)]
pub struct Match {
    /// The match id (`m-` and 16 hex digits), in logs and inspection.
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    /// The game and version its tickets run.
    #[reflect(ignore)]
    pub game: GameRef,
    /// Teams in the match.
    pub teams: u32,
    /// Players in the match (parties count each player).
    pub players: u32,
    /// When it was formed (app elapsed time).
    pub formed_at: Duration,
    /// Whether it started with teams below their full size.
    pub partial: bool,
}

/// A ticket's match.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
#[relationship(relationship_target = MatchMembers)]
pub struct MemberOf(pub Entity);

/// A match's tickets.
#[derive(Component, Debug, Default, PartialEq, Eq, Reflect)]
#[reflect(Component)]
#[relationship_target(relationship = MemberOf)]
pub struct MatchMembers(Vec<Entity>);

/// A matched ticket's team (0-based).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub struct Team(pub u32);

/// When the queues were last matched.
#[derive(Resource, Debug, Default)]
pub struct LastMatchPass(pub Option<Duration>);

/// A ticket's queue and the numbers the matcher looks at, with its pooled record when the
/// matchmakers pool their tickets.
type QueueMember<'a> = (
    Entity,
    &'a Ticket,
    &'a mut TicketState,
    &'a mut QueueTicket,
    &'a TicketResponder,
    Option<&'a Pooled>,
    Has<RemoteTicket>,
);

/// Whether the matcher may look at a waiting ticket now, or fails it (an own ticket past its
/// queue's max wait; one held by another matchmaker's match gets the time to seat it too).
enum Eligible {
    Yes,
    No,
    Expired,
}

fn eligible(
    pool: Option<(&TicketPool, Option<&LiveInstances>)>,
    pooled: Option<&Pooled>,
    remote: bool,
    waited: Duration,
    max_wait: Duration,
    seat_time: Duration,
    now: Duration,
) -> Eligible {
    let Some((pool, live)) = pool else {
        return if waited >= max_wait {
            Eligible::Expired
        } else {
            Eligible::Yes
        };
    };
    let waiting = pooled.is_some_and(|p| p.is_waiting(now));
    if remote {
        // Its owner expires it; a dead owner's tickets are left to lapse.
        let owner_live =
            pooled.is_some_and(|p| live.is_some_and(|l| l.0.contains(&p.record.owner)));
        return if waiting && owner_live && waited < max_wait {
            Eligible::Yes
        } else {
            Eligible::No
        };
    }
    let held = pooled.is_some_and(|p| p.held_elsewhere(&pool.instance));
    let limit = if held { max_wait + seat_time } else { max_wait };
    if waited >= limit {
        Eligible::Expired
    } else if waiting {
        Eligible::Yes
    } else {
        Eligible::No
    }
}

/// A match the pass formed: its tickets with their teams, whether it is partial, and the
/// running server whose backfill it fills, if any.
struct Formed {
    queue: usize,
    tickets: Vec<(Entity, u32)>,
    partial: bool,
    backfill: Option<Entity>,
}

/// What the matcher looks at: a waiting ticket (another matchmaker's when `remote`), or a
/// running server's backfill.
#[derive(Debug, Clone, Copy)]
enum Member {
    Ticket { entity: Entity, remote: bool },
    Backfill(Entity),
}

/// Since when a deployment's backfill has been seen (its age in the queue's order).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Reflect)]
#[reflect(Component)]
pub struct BackfillSince(pub Duration);

/// A deployment as the matcher reads it for backfills.
type BackfillServer<'a> = (
    Entity,
    &'a DeploymentState,
    &'a DeploymentInfo,
    &'a Seats,
    Option<&'a ServesMatch>,
    Option<&'a BackfillSince>,
);

/// The backfills the matcher may fill now: each with its queue, server, players already on each
/// team, request and age.
fn open_backfills<'a>(
    commands: &mut Commands,
    queues: &Queues,
    deployments: &'a Query<BackfillServer<'_>>,
    now: Duration,
) -> Vec<(usize, Entity, Vec<u32>, &'a LeaseBackfill, Duration)> {
    let mut open = Vec::new();
    for (entity, state, info, seats, serving, since) in deployments {
        let Some(backfill) = &info.backfill else {
            if since.is_some() {
                commands.entity(entity).remove::<BackfillSince>();
            }
            continue;
        };
        let since = match since {
            Some(since) => since.0,
            None => {
                commands.entity(entity).insert(BackfillSince(now));
                now
            }
        };
        if *state != DeploymentState::Ready || serving.is_some() || !info.accepting {
            continue;
        }
        let Some(queue) = queues
            .profiles
            .0
            .iter()
            .position(|q| q.name == backfill.queue)
        else {
            continue;
        };
        let profile = &queues.profiles.0[queue];
        let fits = !backfill.slots.is_empty()
            && backfill
                .slots
                .iter()
                .all(|slot| slot.team < profile.teams && seats.is_free(slot.seat));
        if !fits {
            continue;
        }
        let mut prefilled = vec![profile.team_max; profile.teams as usize];
        for slot in &backfill.slots {
            prefilled[slot.team as usize] = prefilled[slot.team as usize].saturating_sub(1);
        }
        open.push((queue, entity, prefilled, backfill, since));
    }
    open
}

/// Fails tickets past their queue's max wait, forms the matches it can within [`MATCH_BUDGET`],
/// and tells the tickets still waiting where they stand.
#[allow(clippy::too_many_arguments)]
pub fn match_queues(
    mut commands: Commands,
    queues: ResMut<Queues>,
    mut last: ResMut<LastMatchPass>,
    time: Res<Time>,
    placement: Res<Placement>,
    pool: Option<Res<TicketPool>>,
    live: Option<Res<LiveInstances>>,
    mut tickets: Query<QueueMember<'_>>,
    deployments: Query<BackfillServer<'_>>,
) {
    let now = time.elapsed();
    if !queues.dirty && last.0.is_some_and(|at| now.saturating_sub(at) < QUEUE_TICK) {
        return;
    }
    // Profiles and stats are borrowed apart below.
    let queues = queues.into_inner();
    queues.dirty = false;
    last.0 = Some(now);

    // 1. Who waits where (read once), failing those past their max wait.
    let mut formed: Vec<Formed> = Vec::new();
    let mut still_waiting: Vec<Vec<Entity>> = vec![Vec::new(); queues.profiles.0.len()];
    {
        let backfills = open_backfills(&mut commands, queues, &deployments, now);
        let mut per_queue: Vec<Vec<(Member, Waiting<'_>)>> =
            (0..queues.profiles.0.len()).map(|_| Vec::new()).collect();
        for (queue, entity, prefilled, backfill, since) in &backfills {
            per_queue[*queue].push((
                Member::Backfill(*entity),
                Waiting {
                    // First among tickets that joined at the same instant.
                    key: 0,
                    enqueued_at: *since,
                    players: 0,
                    attributes: &backfill.attributes,
                    prefilled: Some(prefilled),
                },
            ));
        }
        for (entity, ticket, state, queued, responder, pooled, remote) in &tickets {
            if *state != TicketState::InQueue {
                continue;
            }
            let profile = &queues.profiles.0[queued.queue];
            let eligibility = eligible(
                pool.as_deref().map(|pool| (pool, live.as_deref())),
                pooled,
                remote,
                now.saturating_sub(queued.enqueued_at),
                profile.max_wait,
                placement.0.ticket_timeout,
                now,
            );
            if matches!(eligibility, Eligible::No) {
                continue;
            }
            if matches!(eligibility, Eligible::Expired) {
                info!(
                    "ticket `{}`: no match in queue `{}` within {}s",
                    ticket.id,
                    profile.name,
                    profile.max_wait.as_secs()
                );
                fail_ticket(
                    &mut commands,
                    entity,
                    ticket,
                    responder,
                    ErrorCode::Timeout,
                    format!(
                        "no match in queue {} within {}s; try again",
                        profile.name,
                        profile.max_wait.as_secs()
                    ),
                );
                queues.stats[queued.queue].expired += 1;
                continue;
            }
            per_queue[queued.queue].push((
                Member::Ticket { entity, remote },
                Waiting {
                    key: queued.key,
                    enqueued_at: queued.enqueued_at,
                    players: queued.request.players(),
                    attributes: &queued.request.attributes,
                    prefilled: None,
                },
            ));
        }
        // 2. The matches, queue by queue, oldest tickets first.
        for (queue, members) in per_queue.iter_mut().enumerate() {
            if members.is_empty() {
                continue;
            }
            members.sort_unstable_by_key(|(_, w)| (w.enqueued_at, w.key));
            let views: Vec<Waiting<'_>> = members.iter().map(|(_, w)| *w).collect();
            let mut budget = Budget::time(MATCH_BUDGET).starting_at(queues.cursors[queue]);
            let plans = form_matches(&queues.profiles.0[queue], &views, now, &mut budget);
            queues.cursors[queue] = budget.stopped_at.unwrap_or(0);
            let mut taken = vec![false; members.len()];
            for plan in plans {
                let mut formed_tickets = Vec::with_capacity(plan.tickets.len());
                let mut backfill = None;
                for (index, _) in &plan.tickets {
                    taken[*index] = true;
                }
                // The owner of a match's oldest ticket forms it: every matchmaker finds the same
                // plans in the same pool, and leaves the others' to them.
                let oldest_remote = plan
                    .tickets
                    .iter()
                    .filter_map(|(index, _)| match members[*index].0 {
                        Member::Ticket { remote, .. } => Some((*index, remote)),
                        Member::Backfill(_) => None,
                    })
                    .min()
                    .is_some_and(|(_, remote)| remote);
                if oldest_remote {
                    continue;
                }
                for (index, team) in &plan.tickets {
                    match members[*index].0 {
                        Member::Ticket { entity, .. } => formed_tickets.push((entity, *team)),
                        Member::Backfill(entity) => backfill = Some(entity),
                    }
                }
                formed.push(Formed {
                    queue,
                    tickets: formed_tickets,
                    partial: plan.partial,
                    backfill,
                });
            }
            still_waiting[queue] = members
                .iter()
                .zip(&taken)
                .filter(|(_, taken)| !**taken)
                .filter_map(|((member, _), _)| match member {
                    Member::Ticket {
                        entity,
                        remote: false,
                    } => Some(*entity),
                    _ => None,
                })
                .collect();
        }
    }

    // 3. Each match an entity; its tickets point at it with their teams.
    for Formed {
        queue,
        tickets: members,
        partial,
        backfill,
    } in formed
    {
        let profile = &queues.profiles.0[queue];
        let Some(game) = members
            .first()
            .and_then(|(e, _)| tickets.get(*e).ok())
            .map(|(_, ticket, ..)| ticket.game.clone())
        else {
            continue;
        };
        let players: u32 = members
            .iter()
            .filter_map(|(e, _)| tickets.get(*e).ok())
            .map(|(_, _, _, q, ..)| q.request.players())
            .sum();
        let id = format!("m-{:016x}", rand::random::<u64>());
        let entity = commands
            .spawn((
                Name::new(format!("match {id}")),
                Match {
                    id: id.clone(),
                    queue: profile.name.clone(),
                    game,
                    teams: profile.teams,
                    players,
                    formed_at: now,
                    partial,
                },
                super::seating::MatchState::NeedsServer,
            ))
            .id();
        if let Some(deployment) = backfill
            && let Ok((_, _, info, ..)) = deployments.get(deployment)
            && let Some(request) = &info.backfill
        {
            commands.entity(entity).insert(BackfillFor {
                deployment,
                slots: request.slots.clone(),
            });
            // No second match for this backfill while this one takes its seats.
            commands.entity(deployment).insert(ServesMatch(entity));
        }
        let mut waits = Vec::with_capacity(members.len());
        for (ticket_entity, team) in &members {
            let Ok((_, ticket, mut state, queued, responder, ..)) = tickets.get_mut(*ticket_entity)
            else {
                continue;
            };
            waits.push(now.saturating_sub(queued.enqueued_at));
            *state = TicketState::Matched { with: entity };
            commands
                .entity(*ticket_entity)
                .insert((MemberOf(entity), Team(*team)));
            send_status(
                responder,
                &ticket.id,
                MatchStage::Allocating,
                &format!(
                    "Match found: team {} of {}; getting the game server ready",
                    team + 1,
                    profile.teams
                ),
            );
        }
        debug!(
            "match `{id}` in queue `{}`: {} tickets, {players} players{}",
            profile.name,
            members.len(),
            if partial { " (partial)" } else { "" }
        );
        queues.stats[queue].record_match(&waits);
    }

    // 4. The others hear where they stand.
    for (queue, waiting) in still_waiting.iter().enumerate() {
        let profile = &queues.profiles.0[queue];
        let typical = queues.stats[queue].typical_wait;
        for (position, entity) in waiting.iter().enumerate() {
            if let Ok((_, ticket, _, mut queued, responder, ..)) = tickets.get_mut(*entity) {
                tell_progress(
                    profile,
                    ticket,
                    &mut queued,
                    responder,
                    position + 1,
                    typical,
                    now,
                );
            }
        }
    }
}

/// Sends a ticket its place in the queue when its position or windows changed, at most every
/// [`PROGRESS_EVERY`] (a widening always gets through).
fn tell_progress(
    profile: &super::profile::QueueProfile,
    ticket: &Ticket,
    queued: &mut QueueTicket,
    responder: &TicketResponder,
    position: usize,
    typical: Option<Duration>,
    now: Duration,
) {
    let waited = now.saturating_sub(queued.enqueued_at);
    let steps = profile.widening_steps(waited);
    let changed = match queued.told {
        None => true,
        Some((told_steps, told_position, at)) => {
            steps != told_steps
                || (told_position != position && now.saturating_sub(at) >= PROGRESS_EVERY)
        }
    };
    if !changed {
        return;
    }
    queued.told = Some((steps, position, now));
    let estimate = match typical {
        Some(typical) => format!(
            "about {}s more",
            typical.saturating_sub(waited).as_secs().max(1)
        ),
        None => "no estimate yet".to_owned(),
    };
    let widened = if steps > 0 {
        format!("; search widened {steps}x")
    } else {
        String::new()
    };
    send_status(
        responder,
        &ticket.id,
        MatchStage::Queued,
        &format!(
            "In queue {}: position {position}, {estimate}{widened}",
            profile.name
        ),
    );
}
