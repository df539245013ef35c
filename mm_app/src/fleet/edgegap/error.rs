//! Edgegap API answers as typed errors.

use std::time::Duration;

use thiserror::Error;

use crate::fleet::FleetError;

/// What went wrong talking to the Edgegap API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EdgegapError {
    /// 400: the request is malformed (a bug or a bad app/version name on our side).
    #[error("Edgegap refused the request as malformed (400): {0}")]
    BadRequest(String),
    /// The configured API key is unusable (empty or not a header value); nothing was sent.
    #[error("EDGEGAP_API_KEY {0}: set it to an API token from Edgegap's dashboard")]
    BadKey(&'static str),
    /// 401/403: the API key is missing, wrong or lacks the permission.
    #[error("Edgegap refused the API key ({status}); check EDGEGAP_API_KEY")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// 404: the app, version, deployment or session does not exist.
    #[error("Edgegap has no such resource (404): {0}")]
    NotFound(String),
    /// 409: conflicts with the resource's state (e.g. already stopping).
    #[error("Edgegap reports a conflict (409): {0}")]
    Conflict(String),
    /// 410: the resource is gone (a delete of it is done).
    #[error("Edgegap resource is gone (410)")]
    Gone,
    /// 422: no capacity for this request (no location could host it).
    #[error("Edgegap has no capacity for this request (422): {0}")]
    NoCapacity(String),
    /// 429: rate limited; retry after the given delay if Edgegap sent one.
    #[error("Edgegap rate limited us (429)")]
    RateLimited {
        /// The `Retry-After` delay, if any.
        retry_after: Option<Duration>,
    },
    /// 5xx: Edgegap failed.
    #[error("Edgegap failed ({status}): {detail}")]
    Server {
        /// The status code.
        status: u16,
        /// The body, shortened.
        detail: String,
    },
    /// The API could not be reached or the answer was cut.
    #[error("Edgegap API unreachable: {0}")]
    Transport(String),
    /// The answer was not what the documented API returns.
    #[error("unexpected Edgegap answer: {0}")]
    Unexpected(String),
}

/// Longest body kept in an error message.
const MAX_DETAIL: usize = 300;

fn shorten(body: &str) -> String {
    let body = body.trim();
    if body.len() <= MAX_DETAIL {
        return body.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

impl EdgegapError {
    /// The error for a non-success status, its body and its `Retry-After` header.
    pub fn from_status(status: u16, body: &str, retry_after: Option<&str>) -> Self {
        let detail = shorten(body);
        match status {
            400 => Self::BadRequest(detail),
            401 | 403 => Self::Unauthorized { status },
            404 => Self::NotFound(detail),
            409 => Self::Conflict(detail),
            410 => Self::Gone,
            422 => Self::NoCapacity(detail),
            429 => Self::RateLimited {
                retry_after: retry_after
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
            _ => Self::Server { status, detail },
        }
    }

    /// Whether the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport(_)
        )
    }

    /// Whether this answer to a delete means the resource is already gone (the delete is done).
    pub fn means_already_deleted(&self) -> bool {
        matches!(self, Self::NotFound(_) | Self::Gone)
    }
}

impl From<EdgegapError> for FleetError {
    fn from(error: EdgegapError) -> Self {
        match &error {
            EdgegapError::NoCapacity(_) => FleetError::NoCapacity(error.to_string()),
            EdgegapError::BadRequest(_)
            | EdgegapError::BadKey(_)
            | EdgegapError::Unauthorized { .. }
            | EdgegapError::NotFound(_)
            | EdgegapError::Conflict(_) => FleetError::Rejected(error.to_string()),
            _ => FleetError::Unavailable(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_maps_to_a_typed_error() {
        assert!(matches!(
            EdgegapError::from_status(400, "bad", None),
            EdgegapError::BadRequest(_)
        ));
        assert!(matches!(
            EdgegapError::from_status(401, "", None),
            EdgegapError::Unauthorized { status: 401 }
        ));
        assert!(matches!(
            EdgegapError::from_status(404, "", None),
            EdgegapError::NotFound(_)
        ));
        assert!(matches!(
            EdgegapError::from_status(409, "", None),
            EdgegapError::Conflict(_)
        ));
        assert_eq!(EdgegapError::from_status(410, "", None), EdgegapError::Gone);
        assert!(matches!(
            EdgegapError::from_status(422, "", None),
            EdgegapError::NoCapacity(_)
        ));
        assert_eq!(
            EdgegapError::from_status(429, "", Some("3")),
            EdgegapError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            EdgegapError::from_status(503, "", None),
            EdgegapError::Server { status: 503, .. }
        ));
    }

    #[test]
    fn retryable_and_already_deleted_classes() {
        assert!(EdgegapError::from_status(429, "", None).is_retryable());
        assert!(EdgegapError::from_status(502, "", None).is_retryable());
        assert!(!EdgegapError::from_status(422, "", None).is_retryable());
        assert!(!EdgegapError::from_status(401, "", None).is_retryable());
        assert!(EdgegapError::from_status(404, "", None).means_already_deleted());
        assert!(EdgegapError::from_status(410, "", None).means_already_deleted());
        assert!(matches!(
            FleetError::from(EdgegapError::from_status(422, "", None)),
            FleetError::NoCapacity(_)
        ));
    }

    #[test]
    fn long_bodies_are_shortened_and_the_key_never_appears() {
        let body = "é".repeat(400);
        let err = EdgegapError::from_status(500, &body, None);
        assert!(err.to_string().len() < 700);
        let err = EdgegapError::from_status(401, "", None);
        assert!(err.to_string().contains("EDGEGAP_API_KEY"));
    }
}
