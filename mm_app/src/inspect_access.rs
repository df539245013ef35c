//! Who may inspect: the HTTP front of `bevy_remote`, with its access policy.
//!
//! `bevy_remote`'s own HTTP transport answers anyone who can reach the port, including a web page
//! open in the operator's browser (a cross-site `POST` needs no CORS preflight for a simple body).
//! This front serves the same JSON-RPC protocol and, before a request reaches the world:
//!
//! - refuses any request carrying an `Origin` header (browsers always send one on cross-site
//!   requests; `curl`, scripts and the test tools do not), with 403;
//! - when a bearer token is configured (required on a non-loopback address), refuses requests
//!   without `Authorization: Bearer <token>`, with 401 (compared in constant time);
//! - serves only the read methods ([`READ_METHODS`]) unless writes were allowed
//!   (`--remote-allow-writes`); a write method is answered with a JSON-RPC error that says so;
//! - caps the body at [`MAX_BODY_BYTES`] and a batch at [`MAX_BATCH`] calls, and answers within
//!   [`CALL_TIMEOUT`] or with an error.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bevy_remote::{BrpError, BrpMessage, BrpResult, error_codes};
use bevygap_shared::secret::{Secret, same_secret};
use serde_json::{Value, json};
use tracing::{debug, warn};

/// The methods served without `--remote-allow-writes`: they read the world and change nothing.
pub const READ_METHODS: &[&str] = &[
    "world.query",
    "world.get_components",
    "world.get_resources",
    "world.list_components",
    "world.list_resources",
    "registry.schema",
    "rpc.discover",
    crate::inspect::SUMMARY_METHOD,
];

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The most calls in one batch.
pub const MAX_BATCH: usize = 64;

/// How long one call may wait for the world to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// JSON-RPC error code for a request the policy refuses (in the implementation-defined range).
pub const REFUSED_CODE: i16 = -32_001;

/// What the front lets through.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    /// Serve methods that change the world as well as the read methods.
    pub allow_writes: bool,
    /// The bearer token every request must carry, if any.
    pub token: Option<Secret>,
}

/// Why a request was refused before it reached the world. The caller is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefused {
    /// The request came from a web page.
    #[error(
        "requests from a web page (with an Origin header) are refused: call the inspection endpoint from curl or a script"
    )]
    BrowserOrigin,
    /// The bearer token is missing or wrong.
    #[error(
        "this inspection endpoint needs `Authorization: Bearer <token>` (the matchmaker's BEVYGAP_REMOTE_TOKEN)"
    )]
    Unauthorized,
}

impl AccessRefused {
    fn status(&self) -> StatusCode {
        match self {
            Self::BrowserOrigin => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }
}

impl AccessPolicy {
    /// Checks the request's headers.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), AccessRefused> {
        if headers.contains_key(header::ORIGIN) {
            return Err(AccessRefused::BrowserOrigin);
        }
        if let Some(token) = &self.token {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !same_secret(presented.as_bytes(), token.expose().as_bytes()) {
                return Err(AccessRefused::Unauthorized);
            }
        }
        Ok(())
    }

    /// Whether `method` may be called.
    pub fn allows(&self, method: &str) -> bool {
        self.allow_writes || READ_METHODS.contains(&method)
    }
}

/// The world's mailbox, known once `bevy_remote` has made it (at `PreStartup`).
pub type Mailbox = Arc<OnceLock<async_channel::Sender<BrpMessage>>>;

#[derive(Clone)]
struct Front {
    policy: Arc<AccessPolicy>,
    mailbox: Mailbox,
}

/// Serves the front on `listener` until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, policy: AccessPolicy, mailbox: Mailbox) {
    let addr = listener.local_addr().ok();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            warn!("inspection endpoint {addr:?} could not start ({error}); inspection is off");
            return;
        }
    };
    let front = Front {
        policy: Arc::new(policy),
        mailbox,
    };
    let router = axum::Router::new()
        .route("/", axum::routing::post(rpc))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(front);
    if let Err(error) = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        warn!("inspection endpoint {addr:?} stopped ({error})");
    }
}

async fn rpc(
    State(front): State<Front>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = front.policy.admit(&headers) {
        debug!("inspection request from {peer} refused: {refused}");
        let body = reply(Value::Null, Err(error(REFUSED_CODE, refused.to_string())));
        return (refused.status(), axum::Json(body)).into_response();
    }
    let answer = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(calls)) if calls.len() > MAX_BATCH => reply(
            Value::Null,
            Err(error(
                error_codes::INVALID_REQUEST,
                format!("a batch holds at most {MAX_BATCH} calls"),
            )),
        ),
        Ok(Value::Array(calls)) => {
            let mut answers = Vec::with_capacity(calls.len());
            for call in calls {
                answers.push(front.call(call).await);
            }
            Value::Array(answers)
        }
        Ok(call) => front.call(call).await,
        Err(parse) => reply(
            Value::Null,
            Err(error(error_codes::PARSE_ERROR, parse.to_string())),
        ),
    };
    axum::Json(answer).into_response()
}

impl Front {
    /// One JSON-RPC call: checked against the policy, then answered by the world.
    async fn call(&self, call: Value) -> Value {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = call.get("method").and_then(Value::as_str) else {
            return reply(
                id,
                Err(error(error_codes::INVALID_REQUEST, "`method` is missing")),
            );
        };
        if method.ends_with("+watch") {
            return reply(
                id,
                Err(error(
                    error_codes::METHOD_NOT_FOUND,
                    format!("`{method}` streams; this endpoint answers single calls: poll instead"),
                )),
            );
        }
        if !self.policy.allows(method) {
            return reply(
                id,
                Err(error(
                    REFUSED_CODE,
                    format!(
                        "`{method}` is not a read method; the matchmaker serves it only with --remote-allow-writes"
                    ),
                )),
            );
        }
        let Some(mailbox) = self.mailbox.get() else {
            return reply(
                id,
                Err(error(
                    error_codes::INTERNAL_ERROR,
                    "the matchmaker is still starting; try again",
                )),
            );
        };
        let (sender, answer) = async_channel::bounded(1);
        let message = BrpMessage {
            method: method.to_owned(),
            params: call.get("params").cloned(),
            sender,
        };
        if mailbox.send(message).await.is_err() {
            return reply(
                id,
                Err(error(
                    error_codes::INTERNAL_ERROR,
                    "the matchmaker is stopping",
                )),
            );
        }
        match tokio::time::timeout(CALL_TIMEOUT, answer.recv()).await {
            Ok(Ok(result)) => reply(id, result),
            Ok(Err(_)) | Err(_) => reply(
                id,
                Err(error(
                    error_codes::INTERNAL_ERROR,
                    format!("no answer within {CALL_TIMEOUT:?}"),
                )),
            ),
        }
    }
}

fn error(code: i16, message: impl Into<String>) -> BrpError {
    BrpError {
        code,
        message: message.into(),
        data: None,
    }
}

/// A JSON-RPC 2.0 response object.
fn reply(id: Value, result: BrpResult) -> Value {
    match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(error) => json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn policy(token: Option<&str>) -> AccessPolicy {
        AccessPolicy {
            allow_writes: false,
            token: token.map(Secret::new),
        }
    }

    #[test]
    fn a_page_in_a_browser_is_refused_even_with_the_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(
            policy(Some("s3cret")).admit(&headers),
            Err(AccessRefused::BrowserOrigin)
        );
    }

    #[test]
    fn a_configured_token_must_match_exactly() {
        let p = policy(Some("s3cret"));
        let mut headers = HeaderMap::new();
        assert_eq!(p.admit(&headers), Err(AccessRefused::Unauthorized));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(wrong));
            assert_eq!(
                p.admit(&headers),
                Err(AccessRefused::Unauthorized),
                "{wrong}"
            );
        }
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(p.admit(&headers), Ok(()));
        assert_eq!(policy(None).admit(&HeaderMap::new()), Ok(()));
    }

    #[test]
    fn only_read_methods_pass_unless_writes_are_allowed() {
        let p = policy(None);
        assert!(p.allows("world.query") && p.allows("bevygap/summary"));
        for write in [
            "world.insert_components",
            "world.mutate_components",
            "world.despawn_entity",
            "world.insert_resources",
            "world.spawn_entity",
            "world.trigger_event",
        ] {
            assert!(!p.allows(write), "{write}");
        }
        let open = AccessPolicy {
            allow_writes: true,
            token: None,
        };
        assert!(open.allows("world.mutate_components"));
    }
}
