//! Live inspection over `bevy_remote` (JSON-RPC over HTTP, loopback by default), read-only
//! unless `--remote-allow-writes`, refusing browser pages, and behind a bearer token off
//! loopback (see [`inspect_access`](crate::inspect_access)).
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

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_remote::{BrpResult, BrpSender, RemoteMethods, RemotePlugin};
use bevygap_shared::secret::Secret;
use serde_json::{Value, json};

use crate::deployment::{DeploymentId, DeploymentInfo, DeploymentState, Seats};
use crate::error::ConfigError;
use crate::fleet_driver::Fleet;
use crate::inspect_access::{AccessPolicy, Mailbox, READ_METHODS, serve};
use crate::queues::{Match, MatchState, QueueTicket, RemoteTicket, Rule};
use crate::runtime::AsyncRuntime;
use crate::seats::{LedgerReadiness, LedgerStats, SeatReservation};
use crate::ticket::{Ticket, TicketState};

/// The name of the summary method.
pub const SUMMARY_METHOD: &str = "bevygap/summary";

/// Where the inspection endpoint listens, and who may use it.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    /// Bind address (127.0.0.1 unless a token is set).
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Serve the methods that change the world (spawn, insert, mutate, despawn, …).
    pub allow_writes: bool,
    /// The bearer token every request must carry; required on a non-loopback address.
    pub token: Option<Secret>,
}

impl InspectConfig {
    /// Read-only inspection on loopback, without a token.
    pub fn loopback(port: u16) -> Self {
        Self {
            address: [127, 0, 0, 1].into(),
            port,
            allow_writes: false,
            token: None,
        }
    }

    /// Refuses a non-loopback address without a token.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.address.is_loopback() && self.token.as_ref().is_none_or(Secret::is_empty) {
            return Err(ConfigError::invalid(
                "remote-address",
                "off loopback the inspection endpoint needs a bearer token: set BEVYGAP_REMOTE_TOKEN or --remote-token-file",
            ));
        }
        Ok(())
    }
}

/// Adds `bevy_remote` with the summary method, served by the access-checked front.
pub struct InspectPlugin {
    /// Where to listen and who may call.
    pub config: InspectConfig,
}

/// The front's slot for the world's mailbox.
#[derive(Resource)]
struct InspectMailbox(Mailbox);

impl InspectPlugin {
    /// Binds the listener (a bind failure is a clear error) and adds the plugin. Needs
    /// [`AsyncRuntime`].
    pub fn install(self, app: &mut App) -> Result<(), ConfigError> {
        self.config.validate()?;
        let addr = SocketAddr::new(self.config.address, self.config.port);
        let bind_error = |e: std::io::Error| ConfigError::Bind {
            addr,
            reason: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        if let Ok(bound) = listener.local_addr() {
            info!(
                "matchmaker: inspection on http://{bound} ({}{})",
                if self.config.allow_writes {
                    "reads and writes"
                } else {
                    "read-only"
                },
                if self.config.token.is_some() {
                    ", bearer token required"
                } else {
                    ""
                }
            );
        }
        let mailbox = Mailbox::default();
        let runtime = app.world().resource::<AsyncRuntime>().0.clone();
        let policy = AccessPolicy {
            allow_writes: self.config.allow_writes,
            token: self.config.token.clone(),
        };
        runtime.spawn(serve(listener, policy, mailbox.clone()));
        app.insert_resource(InspectMailbox(mailbox));
        app.add_plugins(self);
        Ok(())
    }
}

impl Plugin for InspectPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(RemotePlugin::default().with_method_main(SUMMARY_METHOD, summary));
        if !self.config.allow_writes {
            // Methods that change the world do not exist here at all, whatever reaches the mailbox.
            let all = app.world().resource::<RemoteMethods>();
            let mut reads = RemoteMethods::new();
            for name in READ_METHODS {
                if let Some(id) = all.get(name) {
                    reads.insert(*name, *id);
                }
            }
            app.insert_resource(reads);
        }
        app.add_systems(Startup, open_mailbox);
    }
}

/// Hands the world's mailbox (made at `PreStartup`) to the HTTP front.
fn open_mailbox(sender: Res<BrpSender>, slot: Option<Res<InspectMailbox>>) {
    if let Some(slot) = slot {
        let _ = slot.0.set((**sender).clone());
    }
}

/// What the summary reads: tickets, reservations, deployments and the fleet backend.
#[derive(SystemParam)]
pub struct SummaryParams<'w, 's> {
    /// This matchmaker's own tickets (mirrors of pooled tickets are counted apart).
    tickets: Query<'w, 's, &'static TicketState, Without<RemoteTicket>>,
    pooled: Query<'w, 's, (), With<RemoteTicket>>,
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
    players: Option<Res<'w, crate::player_check::PlayerCheck>>,
    queues: Res<'w, crate::queues::Queues>,
    queued: Query<
        'w,
        's,
        (&'static Ticket, &'static TicketState, &'static QueueTicket),
        Without<RemoteTicket>,
    >,
    matches: Query<'w, 's, (&'static Match, &'static MatchState)>,
    time: Res<'w, Time>,
}

/// Most waiting tickets the summary lists per queue (the oldest).
const LISTED_TICKETS: usize = 20;

impl SummaryParams<'_, '_> {
    /// Tickets and reservations by state, seats per deployment, and the fleet backend with the
    /// stops it has not yet seen confirmed.
    pub fn summary(&self) -> Value {
        let (mut queued, mut allocating, mut placed) = (0, 0, 0);
        let (mut in_queue, mut matched) = (0, 0);
        for state in &self.tickets {
            match state {
                TicketState::Queued => queued += 1,
                TicketState::Allocating => allocating += 1,
                TicketState::Placed { .. } => placed += 1,
                TicketState::InQueue => in_queue += 1,
                TicketState::Matched { .. } => matched += 1,
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
            "tickets": {
                "queued": queued,
                "allocating": allocating,
                "placed": placed,
                "in_queue": in_queue,
                "matched": matched,
                "pooled_from_others": self.pooled.iter().count(),
            },
            "reservations": { "storing": storing, "issued": issued },
            "deployments": list,
            "ledger": {
                "ready": self.readiness.ready(),
                "seats_taken": self.stats.taken,
                "conflicts": self.stats.conflicts,
                "failed_writes": self.stats.failed,
            },
            "matchmakers": self.live.as_ref().map_or(1, |live| live.0),
            "players_refused": self.players.as_ref().map_or(0, |p| p.refused()),
        });
        summary["queues"] = self.queues_summary();
        summary["matches"] = self
            .matches
            .iter()
            .map(|(m, state)| {
                json!({
                    "id": m.id,
                    "queue": m.queue,
                    "players": m.players,
                    "teams": m.teams,
                    "partial": m.partial,
                    "state": format!("{state:?}").split_whitespace().next().unwrap_or_default(),
                    "age_secs": self.time.elapsed().saturating_sub(m.formed_at).as_secs_f64(),
                })
            })
            .collect();
        if let Some(fleet) = &self.fleet {
            summary["fleet"] = json!({
                "backend": fleet.0.name(),
                "pending_stops": fleet.0.pending_stops(),
            });
        }
        summary
    }
}

impl SummaryParams<'_, '_> {
    /// Each queue: who waits (players, the oldest wait, the oldest tickets with their current
    /// windows), what it has matched and expired, and its typical wait.
    fn queues_summary(&self) -> Value {
        let now = self.time.elapsed();
        let mut waiting: Vec<Vec<(&Ticket, &QueueTicket)>> =
            vec![Vec::new(); self.queues.profiles.0.len()];
        for (ticket, state, queued) in &self.queued {
            if *state == TicketState::InQueue
                && let Some(list) = waiting.get_mut(queued.queue)
            {
                list.push((ticket, queued));
            }
        }
        self.queues
            .profiles
            .0
            .iter()
            .zip(&self.queues.stats)
            .zip(waiting)
            .map(|((profile, stats), mut tickets)| {
                tickets.sort_by_key(|(_, q)| (q.enqueued_at, q.key));
                let players: u32 = tickets.iter().map(|(_, q)| q.request.players()).sum();
                let oldest = tickets
                    .first()
                    .map(|(_, q)| now.saturating_sub(q.enqueued_at).as_secs_f64());
                let listed: Vec<Value> = tickets
                    .iter()
                    .take(LISTED_TICKETS)
                    .map(|(ticket, q)| {
                        let waited = now.saturating_sub(q.enqueued_at);
                        json!({
                            "ticket": ticket.id.0,
                            "players": q.request.players(),
                            "waited_secs": waited.as_secs_f64(),
                            "windows": windows_json(profile, waited),
                            "widened": profile.widening_steps(waited),
                        })
                    })
                    .collect();
                json!({
                    "name": profile.name,
                    "teams": profile.teams,
                    "team_size": [profile.team_min, profile.team_max],
                    "max_wait_secs": profile.max_wait.as_secs_f64(),
                    "waiting_tickets": tickets.len(),
                    "waiting_players": players,
                    "oldest_wait_secs": oldest,
                    "typical_wait_secs": stats.typical_wait.map(|w| w.as_secs_f64()),
                    "matches": stats.matches,
                    "matched_tickets": stats.matched_tickets,
                    "expired": stats.expired,
                    "tickets": listed,
                })
            })
            .collect()
    }
}

/// A queue's widening windows after waiting `waited`: each difference rule by its attribute,
/// and the latency window as `latency_ms`.
fn windows_json(profile: &crate::queues::QueueProfile, waited: Duration) -> Value {
    let mut windows = serde_json::Map::new();
    for rule in &profile.rules {
        match rule {
            Rule::Difference { attribute, window } => {
                windows.insert(attribute.clone(), window.at(waited).into());
            }
            Rule::Latency { window } => {
                windows.insert("latency_ms".into(), window.at(waited).into());
            }
            Rule::Equal { .. } | Rule::Intersect { .. } => {}
        }
    }
    Value::Object(windows)
}

/// The `bevygap/summary` method (see [`SummaryParams::summary`]).
pub fn summary(In(_): In<Option<Value>>, params: SummaryParams) -> BrpResult {
    Ok(params.summary())
}
