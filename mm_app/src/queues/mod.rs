//! Matchmaking queues: tickets grouped into matches by rules — team count and sizes, parties kept
//! on one team, skill or rating windows and region latency that widen while a player waits,
//! equal modes and shared languages, partial matches after a wait, and a maximum wait.
//!
//! - [`profile`]: the queues of the `--queues` file (TOML or JSON), validated at start;
//! - [`matcher`]: forming matches from the tickets waiting in one queue, a pure and deterministic
//!   function with a work budget.

pub mod matcher;
pub mod profile;

pub use matcher::{Budget, MatchPlan, Waiting, form_matches};
pub use profile::{Expansion, QueueConfigError, QueueProfile, QueueProfiles, Rule};
