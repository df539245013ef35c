//! Error codes sent to clients, shaped after HTTP status codes.

use serde::{Deserialize, Serialize};

/// Why a match request failed, as sent to the client. The numeric value (see [`ErrorCode::code`])
/// follows HTTP: 4xx means the client can fix its request, 5xx means the service could not serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed (400).
    BadRequest,
    /// No such game or version is served here (404).
    UnknownGame,
    /// No server became ready in time (408).
    Timeout,
    /// The client cancelled or went away (409).
    Cancelled,
    /// The message was bigger than allowed (413).
    TooLarge,
    /// Too many requests or connections from this client (429).
    RateLimited,
    /// Something failed inside the matchmaker (500).
    Internal,
    /// The fleet backend failed to provide a server (502).
    FleetError,
    /// No capacity: no server free and none can be started now (503).
    NoCapacity,
    /// This matchmaker is shutting down; another one (or this one, restarted) can serve the
    /// request (503, like [`ErrorCode::NoCapacity`], whose number it shares).
    ShuttingDown,
    /// The request lacks a valid player token from the game's backend (401).
    Unauthorized,
}

impl ErrorCode {
    /// The HTTP-style number sent in the seed's `{"Error":[code,text]}`.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::UnknownGame => 404,
            Self::Timeout => 408,
            Self::Cancelled => 409,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::FleetError => 502,
            Self::NoCapacity | Self::ShuttingDown => 503,
        }
    }

    /// The code for a number, if it is one of ours (503 reads as [`ErrorCode::NoCapacity`]).
    pub fn from_code(code: u16) -> Option<Self> {
        [
            Self::BadRequest,
            Self::Unauthorized,
            Self::UnknownGame,
            Self::Timeout,
            Self::Cancelled,
            Self::TooLarge,
            Self::RateLimited,
            Self::Internal,
            Self::FleetError,
            Self::NoCapacity,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::RateLimited
                | Self::Internal
                | Self::FleetError
                | Self::NoCapacity
                | Self::ShuttingDown
        )
    }
}
