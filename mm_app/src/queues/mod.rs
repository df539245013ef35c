//! Matchmaking queues: tickets grouped into matches by rules — team count and sizes, parties kept
//! on one team, skill or rating windows and region latency that widen while a player waits,
//! equal modes and shared languages, partial matches after a wait, and a maximum wait.
//!
//! - [`profile`]: the queues of the `--queues` file (TOML or JSON), validated at start;
//! - [`matcher`]: forming matches from the tickets waiting in one queue, a pure and deterministic
//!   function with a work budget;
//! - [`tickets`]: a request that names a queue, checked against its profile, waiting in it;
//! - [`matching`]: the system that runs the matcher each frame within a time budget, spawns
//!   [`Match`] entities with their tickets as [`MemberOf`] and [`Team`], expires tickets at their
//!   max wait and tells the others their position, estimated wait and widened windows;
//! - [`seating`]: a match's server (an empty one, or a fresh one from the fleet) and its seats,
//!   taken in the seat ledger by compare-and-set, each token carrying the player's team.
//!
//! A running game server asks for players through its lease (backfill, see
//! `bevygap_server_plugin::backfill`): the matcher treats the request as the oldest ticket of a
//! match whose teams are already partly full, and its match takes exactly the seats the server
//! named.
//!
//! - [`pool`]: the matchmakers of an app pool their queue tickets in NATS KV, so players waiting
//!   on different matchmakers are matched together; a match claims each ticket by
//!   compare-and-set, so no ticket is in two matches.
//!
//! Several matchmakers on one NATS never sell a seat, fill a backfill place or match a ticket
//! twice.

pub mod matcher;
pub mod matching;
pub mod pool;
pub mod profile;
pub mod seating;
pub mod tickets;

pub use matcher::{Budget, MatchPlan, Waiting, form_matches};
pub use matching::{Match, MatchMembers, MemberOf, Team};
pub use pool::{PoolCorePlugin, Pooled, QueuePoolPlugin, RemoteTicket, TicketPool};
pub use profile::{Expansion, QueueConfigError, QueueProfile, QueueProfiles, Rule};
pub use seating::{MatchState, ServesMatch};
pub use tickets::{QueueRefusal, QueueStats, QueueTicket, Queues};
