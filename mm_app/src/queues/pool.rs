//! Queue tickets pooled across the matchmakers of an app, so that players waiting on different
//! matchmakers are matched together.
//!
//! - **Publish:** each matchmaker writes its queue tickets to `{app}_queue_tickets` (one key per
//!   ticket, [`PooledTicket`]) and deletes each key once its ticket is answered, cancelled or
//!   expired. A ticket is matched only once its record is stored.
//! - **Mirror:** every matchmaker watches the bucket and mirrors the waiting tickets of the others
//!   as entities ([`RemoteTicket`]) that the matcher sees beside its own. A mirror's
//!   [`TicketResponder`] leads back to the pool: its answer is written into its record.
//! - **Who forms a match:** every matchmaker runs the same deterministic matcher over the same
//!   tickets, and only the owner of a match's oldest ticket forms it; the others leave those
//!   tickets alone. Tickets of matchmakers that are not running (not in `{app}_matchmakers`) or
//!   past their queue's max wait are not matched.
//! - **Claim:** a formed match claims every ticket, its own included, by compare-and-set
//!   (`Waiting` at the revision it saw → `Claimed`) before it looks for a server. If one claim
//!   is lost (another matchmaker was faster), the match is dissolved and the claims it won are
//!   given back (`Waiting` again).
//! - **Answer:** once seated, the matchmaker answers its own tickets and writes the sessions into
//!   the records of the others (`Matched`, or `Failed`); each owner sends them to its client and
//!   deletes the key.
//!
//! Records left by a matchmaker that died lapse with the bucket's max age; its clients' sockets
//! closed with it.

use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bevy::prelude::*;
use bevygap_shared::nats::{NatsConnection, WatchEvent, spawn_reconciling_watch};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{MatchResult, MatchStage, MatchedSessions};
use bevygap_shared::schema::{PoolState, PooledSession, PooledTicket, decode, encode};
use bevygap_shared::time::now_millis;
use bevygap_shared::untrusted::Untrusted;
use thiserror::Error;
use tokio::sync::mpsc;

use super::matching::{Match, MatchMembers};
use super::seating::{MatchState, dissolve};
use super::tickets::{QueueTicket, Queues, admit};
use crate::bridge::{Inbox, InboxSender, add_inbox};
use crate::core_plugin::{CoreSystems, Placement};
use crate::kv_bridge::{RECONCILE_EVERY, Reconciler};
use crate::runtime::AsyncRuntime;
use crate::ticket::{Ticket, TicketId, TicketIndex, TicketResponder, TicketState, TicketUpdate};

/// How long a pool write that failed for want of NATS waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The pool: present when this matchmaker shares its queue tickets with the app's others.
#[derive(Resource)]
pub struct TicketPool {
    /// This matchmaker's presence id, the owner named in the tickets it publishes and the
    /// claimant in the ones it matches.
    pub instance: String,
    /// The wall clock (Unix milliseconds) at app time zero: own and remote join times convert
    /// through it, so every matchmaker orders the pool's tickets alike.
    pub wall_at_zero_ms: u64,
    answer_to: mpsc::UnboundedSender<(TicketId, TicketUpdate)>,
    answers: Mutex<mpsc::UnboundedReceiver<(TicketId, TicketUpdate)>>,
}

impl TicketPool {
    /// The pool of the matchmaker `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        let (answer_to, answers) = mpsc::unbounded_channel();
        Self {
            instance: instance.into(),
            wall_at_zero_ms: now_millis(),
            answer_to,
            answers: Mutex::new(answers),
        }
    }
}

/// A queue ticket's record in the pool, as this matchmaker last saw or wrote it.
#[derive(Component, Debug, Clone)]
pub struct Pooled {
    /// The record.
    pub record: PooledTicket,
    /// Its revision in the bucket; 0 until first stored.
    pub revision: u64,
    /// Whether a write of this matchmaker to it is in flight.
    pub writing: bool,
    /// No write before this (app elapsed time), after NATS failed one.
    pub retry_at: Duration,
}

impl Pooled {
    /// Whether the ticket is stored and waiting, so a match may claim it at `now`.
    pub fn is_waiting(&self, now: Duration) -> bool {
        self.revision > 0
            && !self.writing
            && now >= self.retry_at
            && self.record.state == PoolState::Waiting
    }

    /// Whether another matchmaker holds the claim (or has answered it).
    pub fn held_elsewhere(&self, instance: &str) -> bool {
        self.revision > 0
            && self.record.state != PoolState::Waiting
            && !self.record.claimed_by(instance)
    }
}

/// On a pooled ticket whose publish or release must be written again (NATS failed it, or its
/// key vanished): only these are looked at again, not every waiting ticket each frame.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct PoolRetry;

/// A mirror of a ticket another matchmaker owns: its client waits there. Matched here like any
/// other; its answer goes into its pooled record.
#[derive(Component, Debug, Clone, Copy, Default, Reflect)]
#[reflect(Component)]
pub struct RemoteTicket;

/// A write to the pool, asked for by the core and carried out by [`write_pool`].
#[derive(Message, Debug, Clone)]
pub struct PoolWrite {
    /// The key (the ticket id).
    pub key: String,
    /// What to write.
    pub op: PoolOp,
    /// Where the outcome goes, if anyone waits for it.
    pub reply: Option<PoolReply>,
}

/// What a [`PoolWrite`] does.
#[derive(Debug, Clone)]
pub enum PoolOp {
    /// Stores a new ticket (the key must not exist).
    Create(Box<PooledTicket>),
    /// Replaces the record if the key is still at `expected`.
    Update {
        /// The revision the writer saw.
        expected: u64,
        /// The new record.
        record: Box<PooledTicket>,
    },
    /// Writes the outcome of a ticket this matchmaker claimed, if it still holds the claim.
    Answer(Box<PoolState>),
    /// Removes the key (its ticket is answered, cancelled or expired).
    Delete,
}

/// Who waits for a pool write's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolReply {
    /// An own ticket being published.
    Published {
        /// The ticket.
        ticket: Entity,
    },
    /// A ticket being claimed for a match.
    Claimed {
        /// The ticket.
        ticket: Entity,
        /// The match.
        of: Entity,
    },
    /// A claimed ticket given back to its queue.
    Released {
        /// The ticket.
        ticket: Entity,
    },
}

/// The outcome of a [`PoolWrite`] with a reply.
#[derive(Message, Debug, Clone)]
pub struct PoolWritten {
    /// Who asked.
    pub reply: PoolReply,
    /// The key's new revision, or why the write was not applied.
    pub result: Result<u64, PoolWriteError>,
}

/// Why a pool write was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PoolWriteError {
    /// The record changed since the revision the writer saw (another matchmaker claimed the
    /// ticket, or its owner removed it). Nobody is at fault.
    #[error("the pooled ticket changed since revision {0}")]
    Conflict(u64),
    /// NATS could not be reached or refused (ours to wait out).
    #[error("NATS is unavailable ({0}); retry")]
    Unavailable(String),
}

/// A pooled ticket as the watch reports it: written (`Some`) or gone (`None`).
#[derive(Message, Debug, Clone)]
pub struct PoolChanged {
    /// The key (the ticket id).
    pub key: String,
    /// The revision of the write or removal.
    pub revision: u64,
    /// The record, or `None` when the key was deleted, purged or lapsed.
    pub record: Option<Box<PooledTicket>>,
}

/// Pools this matchmaker's queue tickets with the app's other matchmakers.
pub struct QueuePoolPlugin {
    /// This matchmaker's presence id.
    pub instance: String,
    /// The NATS connection.
    pub nats: NatsConnection,
    /// The `{app}_queue_tickets` bucket.
    pub store: kv::Store,
}

/// The pool's bucket as a resource.
#[derive(Resource, Clone)]
pub struct PoolStore(pub kv::Store);

impl Plugin for QueuePoolPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(PoolCorePlugin {
            instance: self.instance.clone(),
        });
        add_inbox::<PoolWritten>(app);
        add_inbox::<PoolChanged>(app);
        let runtime = app.world().resource::<AsyncRuntime>().0.clone();
        let changes = app.world().resource::<Inbox<PoolChanged>>().sender();
        {
            let _guard = runtime.enter();
            let watch = spawn_reconciling_watch(
                &self.nats,
                self.store.clone(),
                ">",
                4096,
                Some(RECONCILE_EVERY),
            );
            runtime.spawn(forward_pool(watch, changes));
        }
        app.insert_resource(PoolStore(self.store.clone()))
            .add_systems(Update, write_pool.in_set(CoreSystems::Effects));
    }
}

/// The pool's decisions without I/O: publishing, mirroring, claiming, releasing and answering
/// through [`PoolWrite`], [`PoolWritten`] and [`PoolChanged`] messages (added by
/// [`QueuePoolPlugin`], which carries them to and from NATS).
pub struct PoolCorePlugin {
    /// This matchmaker's presence id.
    pub instance: String,
}

impl Plugin for PoolCorePlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<PoolWrite>()
            .add_message::<PoolWritten>()
            .add_message::<PoolChanged>()
            .insert_resource(TicketPool::new(self.instance.clone()))
            .register_type::<RemoteTicket>()
            .add_observer(delete_answered)
            .add_systems(
                Update,
                (
                    (apply_pool_changes, apply_pool_writes)
                        .chain()
                        .in_set(CoreSystems::Apply)
                        .after(crate::queues::seating::apply_match_seats),
                    claim_matches
                        .in_set(CoreSystems::Place)
                        .after(crate::queues::matching::match_queues)
                        .before(crate::queues::seating::seat_matches),
                    (publish_tickets, release_claims, forward_answers)
                        .chain()
                        .in_set(CoreSystems::Expire),
                ),
            );
    }
}

/// Orders tickets that joined in the same millisecond alike on every matchmaker: the number in
/// the ticket id (`t-` and 16 hex digits).
fn pool_key(ticket_id: &str) -> u64 {
    ticket_id
        .strip_prefix("t-")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(u64::MAX)
}

/// The record of an own ticket that joined a queue; its join time and key become the pool's
/// (whole milliseconds, the id's number), as the other matchmakers see them.
fn own_record(pool: &TicketPool, ticket: &Ticket, queued: &mut QueueTicket) -> PooledTicket {
    let joined_ms = u64::try_from(queued.enqueued_at.as_millis()).unwrap_or(u64::MAX);
    queued.enqueued_at = Duration::from_millis(joined_ms);
    queued.key = pool_key(&ticket.id.0);
    PooledTicket {
        ticket_id: ticket.id.0.clone(),
        owner: pool.instance.clone(),
        game: ticket.game.game.clone(),
        version: ticket.game.version.clone(),
        request: queued.request.clone(),
        enqueued_at_ms: pool.wall_at_zero_ms.saturating_add(joined_ms),
        state: PoolState::Waiting,
    }
}

/// Publishes each new own queue ticket, and again those whose publish is due once more.
#[allow(clippy::type_complexity)]
pub fn publish_tickets(
    mut commands: Commands,
    pool: Res<TicketPool>,
    time: Res<Time>,
    mut writes: MessageWriter<PoolWrite>,
    mut new: Query<(Entity, &Ticket, &mut QueueTicket), (Without<Pooled>, Without<RemoteTicket>)>,
    mut again: Query<(Entity, &mut Pooled), (With<PoolRetry>, Without<RemoteTicket>)>,
) {
    let now = time.elapsed();
    let mut records = Vec::new();
    for (entity, ticket, mut queued) in &mut new {
        let record = own_record(&pool, ticket, &mut queued);
        commands.entity(entity).insert(Pooled {
            record: record.clone(),
            revision: 0,
            writing: true,
            retry_at: now,
        });
        records.push((entity, record));
    }
    for (entity, mut pooled) in &mut again {
        if pooled.revision == 0 && !pooled.writing && now >= pooled.retry_at {
            pooled.writing = true;
            commands.entity(entity).remove::<PoolRetry>();
            records.push((entity, pooled.record.clone()));
        }
    }
    for (entity, record) in records {
        writes.write(PoolWrite {
            key: record.ticket_id.clone(),
            op: PoolOp::Create(Box::new(record)),
            reply: Some(PoolReply::Published { ticket: entity }),
        });
    }
}

/// Claims every ticket of each new match; a match without pooled tickets goes on at once.
pub fn claim_matches(
    pool: Res<TicketPool>,
    mut writes: MessageWriter<PoolWrite>,
    mut matches: Query<(Entity, &Match, &mut MatchState, &MatchMembers), Added<Match>>,
    mut tickets: Query<&mut Pooled>,
) {
    for (match_entity, matched, mut state, members) in &mut matches {
        let mut pending = 0;
        for ticket in members.iter() {
            let Ok(mut pooled) = tickets.get_mut(ticket) else {
                continue;
            };
            pooled.writing = true;
            let record = pooled.record.with_state(PoolState::Claimed {
                by: pool.instance.clone(),
                match_id: matched.id.clone(),
            });
            writes.write(PoolWrite {
                key: record.ticket_id.clone(),
                op: PoolOp::Update {
                    expected: pooled.revision,
                    record: Box::new(record),
                },
                reply: Some(PoolReply::Claimed {
                    ticket,
                    of: match_entity,
                }),
            });
            pending += 1;
        }
        if pending > 0 {
            *state = MatchState::Claiming {
                pending,
                lost: false,
            };
        }
    }
}

/// Gives back the claims on tickets that are waiting again (their match was dissolved).
#[allow(clippy::type_complexity)]
pub fn release_claims(
    mut commands: Commands,
    pool: Res<TicketPool>,
    time: Res<Time>,
    mut writes: MessageWriter<PoolWrite>,
    mut tickets: Query<
        (Entity, &TicketState, &mut Pooled),
        Or<(Changed<TicketState>, With<PoolRetry>)>,
    >,
) {
    let now = time.elapsed();
    for (ticket, state, mut pooled) in &mut tickets {
        if *state != TicketState::InQueue || !pooled.record.claimed_by(&pool.instance) {
            continue;
        }
        if pooled.writing || now < pooled.retry_at {
            commands.entity(ticket).insert(PoolRetry);
            continue;
        }
        pooled.writing = true;
        commands.entity(ticket).remove::<PoolRetry>();
        writes.write(PoolWrite {
            key: pooled.record.ticket_id.clone(),
            op: PoolOp::Update {
                expected: pooled.revision,
                record: Box::new(pooled.record.with_state(PoolState::Waiting)),
            },
            reply: Some(PoolReply::Released { ticket }),
        });
    }
}

/// Applies the outcome of publishes, claims and releases; a match whose claims are all in
/// goes on to find its server, one that lost a claim is dissolved.
#[allow(clippy::type_complexity)]
pub fn apply_pool_writes(
    mut commands: Commands,
    pool: Res<TicketPool>,
    time: Res<Time>,
    mut queues: ResMut<Queues>,
    mut written: MessageReader<PoolWritten>,
    mut tickets: Query<&mut Pooled>,
    mut matches: Query<(
        &Match,
        &mut MatchState,
        Option<&MatchMembers>,
        Option<&super::seating::BackfillFor>,
    )>,
) {
    let now = time.elapsed();
    for PoolWritten { reply, result } in written.read() {
        let (PoolReply::Published { ticket }
        | PoolReply::Claimed { ticket, .. }
        | PoolReply::Released { ticket }) = *reply;
        if let Ok(mut pooled) = tickets.get_mut(ticket) {
            pooled.writing = false;
            match result {
                // The watch already brought a later write (another matchmaker's claim, say):
                // keep that, never the state this write left.
                Ok(revision) if *revision < pooled.revision => {}
                Ok(revision) => {
                    pooled.revision = *revision;
                    pooled.record.state = match reply {
                        PoolReply::Claimed { of, .. } => PoolState::Claimed {
                            by: pool.instance.clone(),
                            match_id: matches
                                .get(*of)
                                .map(|(m, ..)| m.id.clone())
                                .unwrap_or_default(),
                        },
                        _ => PoolState::Waiting,
                    };
                    queues.dirty = true;
                }
                Err(PoolWriteError::Unavailable(error)) => {
                    warn!(
                        "queue ticket `{}` not written to the pool: {error}; retrying in {}s",
                        pooled.record.ticket_id,
                        RETRY_AFTER.as_secs()
                    );
                    pooled.retry_at = now + RETRY_AFTER;
                }
                Err(PoolWriteError::Conflict(_)) => {
                    // The watch brings the record as it is now.
                    pooled.retry_at = now + RETRY_AFTER.min(super::matching::QUEUE_TICK);
                }
            }
            if result.is_err() && !matches!(reply, PoolReply::Claimed { .. }) {
                commands.entity(ticket).insert(PoolRetry);
            }
        }
        let PoolReply::Claimed { of, .. } = *reply else {
            continue;
        };
        let Ok((matched, mut state, members, backfill)) = matches.get_mut(of) else {
            continue;
        };
        let MatchState::Claiming { pending, lost } = &mut *state else {
            continue;
        };
        *pending = pending.saturating_sub(1);
        *lost |= result.is_err();
        if *pending > 0 {
            continue;
        }
        if *lost {
            let members: Vec<Entity> = members.map(|m| m.iter().collect()).unwrap_or_default();
            dissolve(
                &mut commands,
                of,
                matched,
                &members,
                backfill,
                "another matchmaker claimed one of its tickets first",
            );
            queues.dirty = true;
        } else {
            debug!("match `{}`: every ticket claimed", matched.id);
            *state = MatchState::NeedsServer;
        }
    }
}

/// Turns the answers given to mirrors into their pooled records' outcome.
pub fn forward_answers(pool: Res<TicketPool>, mut writes: MessageWriter<PoolWrite>) {
    let Ok(mut answers) = pool.answers.lock() else {
        return;
    };
    while let Ok((ticket, update)) = answers.try_recv() {
        let state = match update {
            // Progress is the owner's to tell.
            TicketUpdate::Status(_) => continue,
            TicketUpdate::Result(MatchResult::Matched(matched)) => PoolState::Matched {
                team: matched.team,
                teams: matched.teams,
                sessions: matched.sessions.iter().map(PooledSession::from).collect(),
            },
            TicketUpdate::Result(MatchResult::Failed(error)) => PoolState::Failed(error),
            // A remote ticket is a queue ticket: it gets a match or an error.
            TicketUpdate::Result(_) => continue,
        };
        writes.write(PoolWrite {
            key: ticket.0,
            op: PoolOp::Answer(Box::new(state)),
            reply: None,
        });
    }
}

/// Deletes an own ticket's record when the ticket goes (answered, cancelled or expired).
pub fn delete_answered(
    trigger: On<Remove, Pooled>,
    tickets: Query<(&Pooled, Has<RemoteTicket>)>,
    mut writes: MessageWriter<PoolWrite>,
) {
    if let Ok((pooled, false)) = tickets.get(trigger.event_target())
        && (pooled.revision > 0 || pooled.writing)
    {
        writes.write(PoolWrite {
            key: pooled.record.ticket_id.clone(),
            op: PoolOp::Delete,
            reply: None,
        });
    }
}

/// Follows the pool: mirrors the others' waiting tickets, and answers own tickets that another
/// matchmaker matched (or failed).
#[allow(clippy::too_many_arguments)]
pub fn apply_pool_changes(
    mut commands: Commands,
    pool: Res<TicketPool>,
    placement: Res<Placement>,
    time: Res<Time>,
    index: Res<TicketIndex>,
    mut queues: ResMut<Queues>,
    shutting_down: Option<Res<crate::shutdown::ShuttingDown>>,
    mut changes: MessageReader<PoolChanged>,
    mut writes: MessageWriter<PoolWrite>,
    mut tickets: Query<(
        &Ticket,
        &TicketState,
        &mut Pooled,
        &TicketResponder,
        Has<RemoteTicket>,
    )>,
) {
    let now = time.elapsed();
    // Only the last change of each key counts (a mirror spawned by an earlier one in this frame
    // is not there to update yet).
    let mut latest: Vec<&PoolChanged> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for change in changes.read() {
        match at.get(change.key.as_str()) {
            Some(&i) => latest[i] = change,
            None => {
                at.insert(change.key.as_str(), latest.len());
                latest.push(change);
            }
        }
    }
    for PoolChanged {
        key,
        revision,
        record,
    } in latest
    {
        let entity = index.0.get(&TicketId(key.clone())).copied();
        let Some(record) = record else {
            // Deleted by its owner, or lapsed.
            match entity.and_then(|e| tickets.get_mut(e).ok().map(|t| (e, t))) {
                Some((entity, (_, _, _, _, true))) => {
                    commands.entity(entity).despawn();
                }
                Some((entity, (ticket, _, mut pooled, _, false))) if !pooled.writing => {
                    warn!(
                        "queue ticket `{}` vanished from the pool while waiting; publishing it again",
                        ticket.id
                    );
                    pooled.revision = 0;
                    pooled.record.state = PoolState::Waiting;
                    commands.entity(entity).insert(PoolRetry);
                }
                _ => {}
            }
            continue;
        };
        let own = record.owner == pool.instance;
        let Some(entity) = entity else {
            if own {
                // A ticket of ours already answered: the record is stale.
                writes.write(PoolWrite {
                    key: key.clone(),
                    op: PoolOp::Delete,
                    reply: None,
                });
            } else if record.state == PoolState::Waiting && shutting_down.is_none() {
                mirror(
                    &mut commands,
                    &pool,
                    &placement,
                    &mut queues,
                    record,
                    *revision,
                    now,
                );
            }
            continue;
        };
        let Ok((ticket, state, mut pooled, responder, remote)) = tickets.get_mut(entity) else {
            continue;
        };
        if *revision < pooled.revision {
            continue; // an echo of a write already applied
        }
        let was_waiting = pooled.record.state == PoolState::Waiting;
        pooled.revision = *revision;
        pooled.record = (**record).clone();
        match &record.state {
            PoolState::Waiting => queues.dirty |= *state == TicketState::InQueue,
            PoolState::Claimed { by, .. } if !own || *by == pool.instance => {}
            PoolState::Claimed { by, match_id } => {
                if was_waiting {
                    debug!(
                        "ticket `{}`: in match `{match_id}` of matchmaker `{by}`",
                        ticket.id
                    );
                    crate::ticket::send_status(
                        responder,
                        &ticket.id,
                        MatchStage::Allocating,
                        "Match found; getting the game server ready",
                    );
                }
            }
            PoolState::Matched { .. } | PoolState::Failed(_) if remote => {
                commands.entity(entity).despawn();
            }
            PoolState::Matched {
                team,
                teams,
                sessions,
            } => {
                let sessions: Option<Vec<_>> =
                    sessions.iter().map(PooledSession::to_session).collect();
                let result = match sessions {
                    Some(sessions) => {
                        info!(
                            "ticket `{}`: matched by another matchmaker, team {}",
                            ticket.id,
                            team + 1
                        );
                        MatchResult::Matched(MatchedSessions {
                            team: *team,
                            teams: *teams,
                            sessions,
                        })
                    }
                    None => {
                        warn!("ticket `{}`: its pooled sessions are unreadable", ticket.id);
                        MatchResult::Failed(bevygap_shared::protocol::channel::MatchError::new(
                            bevygap_shared::protocol::ErrorCode::Internal,
                            "the match's sessions were unreadable; try again",
                        ))
                    }
                };
                responder.send(&ticket.id, TicketUpdate::Result(result));
                commands.entity(entity).despawn();
            }
            PoolState::Failed(error) => {
                debug!(
                    "ticket `{}`: its match failed: {}",
                    ticket.id, error.message
                );
                responder.send(
                    &ticket.id,
                    TicketUpdate::Result(MatchResult::Failed(error.clone())),
                );
                commands.entity(entity).despawn();
            }
        }
    }
}

/// Spawns the mirror of another matchmaker's waiting ticket, if this matchmaker runs its queue.
fn mirror(
    commands: &mut Commands,
    pool: &TicketPool,
    placement: &Placement,
    queues: &mut Queues,
    record: &PooledTicket,
    revision: u64,
    now: Duration,
) {
    let game = GameRef::new(record.game.as_str(), record.version.as_str());
    if !placement.0.serves(&game) {
        return;
    }
    let queue = match admit(&queues.profiles, &game, &record.request) {
        Ok(queue) => queue,
        Err(refused) => {
            debug!(
                "pooled ticket `{}` of `{}` not mirrored: {refused}",
                Untrusted(&record.ticket_id),
                Untrusted(&record.owner)
            );
            return;
        }
    };
    queues.dirty = true;
    commands.spawn((
        Name::new(format!("pooled ticket {}", record.ticket_id)),
        Ticket {
            id: TicketId(record.ticket_id.clone()),
            game,
            client_ip: None,
            region_pings: Vec::new(),
            created_at: now,
            // Its owner times it out.
            deadline: Duration::MAX,
        },
        TicketState::InQueue,
        QueueTicket {
            queue,
            request: record.request.clone(),
            // A ticket older than this process counts from its start.
            enqueued_at: Duration::from_millis(
                record.enqueued_at_ms.saturating_sub(pool.wall_at_zero_ms),
            ),
            key: pool_key(&record.ticket_id),
            told: None,
        },
        TicketResponder(pool.answer_to.clone()),
        RemoteTicket,
        Pooled {
            record: record.clone(),
            revision,
            writing: false,
            retry_at: now,
        },
    ));
}

/// Carries out pool writes.
pub fn write_pool(
    runtime: Res<AsyncRuntime>,
    store: Res<PoolStore>,
    pool: Res<TicketPool>,
    inbox: Res<Inbox<PoolWritten>>,
    mut requests: MessageReader<PoolWrite>,
) {
    for PoolWrite { key, op, reply } in requests.read() {
        let store = store.0.clone();
        let sender = inbox.sender();
        let (key, op, reply) = (key.clone(), op.clone(), *reply);
        let instance = pool.instance.clone();
        runtime.0.spawn(async move {
            let result = write(&store, &key, op, &instance).await;
            match reply {
                Some(reply) => {
                    sender.send(PoolWritten { reply, result }).await;
                }
                None => {
                    if let Err(error) = result {
                        debug!("pooled ticket `{key}` not written: {error}");
                    }
                }
            }
        });
    }
}

/// Tries at most this many times to write an answer whose record moved under it (its owner's
/// echo of an earlier write).
const ANSWER_TRIES: usize = 3;

async fn write(
    store: &kv::Store,
    key: &str,
    op: PoolOp,
    instance: &str,
) -> Result<u64, PoolWriteError> {
    let unavailable = |e: &dyn std::fmt::Display| PoolWriteError::Unavailable(e.to_string());
    match op {
        PoolOp::Create(record) => match store.create(key, encode(&*record).into()).await {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                Err(PoolWriteError::Conflict(0))
            }
            Err(error) => Err(unavailable(&error)),
        },
        PoolOp::Update { expected, record } => {
            match store.update(key, encode(&*record).into(), expected).await {
                Ok(revision) => Ok(revision),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                    Err(PoolWriteError::Conflict(expected))
                }
                Err(error) => Err(unavailable(&error)),
            }
        }
        PoolOp::Delete => store
            .purge(key)
            .await
            .map(|()| 0)
            .map_err(|e| unavailable(&e)),
        PoolOp::Answer(state) => {
            for _ in 0..ANSWER_TRIES {
                let entry = store.entry(key).await.map_err(|e| unavailable(&e))?;
                let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
                    return Err(PoolWriteError::Conflict(0));
                };
                let current = decode::<PooledTicket>(&entry.value)
                    .map_err(|e| PoolWriteError::Unavailable(e.to_string()))?;
                if !current.claimed_by(instance) {
                    // Its owner cancelled it, or the claim is someone else's.
                    return Err(PoolWriteError::Conflict(entry.revision));
                }
                let answered = current.with_state((*state).clone());
                match store
                    .update(key, encode(&answered).into(), entry.revision)
                    .await
                {
                    Ok(revision) => return Ok(revision),
                    Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {}
                    Err(error) => return Err(unavailable(&error)),
                }
            }
            Err(PoolWriteError::Conflict(0))
        }
    }
}

/// Turns the pool's watch into [`PoolChanged`] messages.
async fn forward_pool(
    mut watch: bevygap_shared::nats::WatchHandle,
    changes: InboxSender<PoolChanged>,
) {
    let mut reconciler = Reconciler::default();
    while let Some(event) = watch.events.recv().await {
        for (key, revision) in reconciler.removals(&event) {
            changes
                .send(PoolChanged {
                    key,
                    revision,
                    record: None,
                })
                .await;
        }
        if let WatchEvent::Put {
            key,
            value,
            revision,
        } = &event
        {
            match decode::<PooledTicket>(value) {
                Ok(record) if record.ticket_id == *key => {
                    changes
                        .send(PoolChanged {
                            key: key.clone(),
                            revision: *revision,
                            record: Some(Box::new(record)),
                        })
                        .await;
                }
                Ok(_) => warn!("pooled ticket under key `{key}` names another ticket; ignoring it"),
                Err(error) => warn!("ignoring pooled ticket `{key}`: {error}"),
            }
        }
    }
}
