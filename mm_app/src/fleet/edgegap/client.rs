//! The Edgegap HTTP client: authentication, rate limits, retries, and one method per endpoint.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevygap_shared::secret::Secret;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::api::{
    AppInfo, DeployAccepted, DeployRequest, DeploymentList, DeploymentStatus, NewVersion,
    SessionCreated, SessionRequest, SessionStatus, VersionInfo, VersionUpdated,
};
use super::error::EdgegapError;
use super::retry::{Backoff, DEPLOY_LIMIT, RateLimit, STATUS_LIMIT};

/// Edgegap's public API.
pub const DEFAULT_BASE_URL: &str = "https://api.edgegap.com";

/// Longest wait between retries of a rate-limited call without `Retry-After`.
const RATE_LIMITED_MAX_WAIT: Duration = Duration::from_secs(2);

/// Deployments asked for per list page.
const LIST_PAGE_SIZE: u32 = 100;

/// Most list pages read (10,000 deployments).
pub const MAX_LIST_PAGES: u32 = 100;

/// Largest answer body read (a deployment list page is far smaller).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How to reach the Edgegap API.
#[derive(Debug, Clone)]
pub struct EdgegapApiConfig {
    /// The API's base URL, without a trailing path (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// The API key, with or without its `token ` prefix (from `EDGEGAP_API_KEY`).
    pub api_key: Secret,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
    /// Retries of retryable failures.
    pub backoff: Backoff,
    /// Deployment and session creations: calls per second after a burst (Edgegap allows 40/s).
    pub deploy_limit: (f64, f64),
    /// Status reads: calls per second after a burst (Edgegap allows 20/s). Other calls (stops,
    /// app checks) share this pace in a bucket of their own; lists go at a third of it (10/s).
    pub status_limit: (f64, f64),
    /// How long one call keeps retrying while Edgegap answers 429 (these retries do not count
    /// against `backoff.attempts`: a rate limit passes, and dropping the request would drop players).
    pub rate_limited_budget: Duration,
}

impl EdgegapApiConfig {
    /// The public API with `api_key` and the default limits.
    pub fn new(api_key: Secret) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            api_key,
            request_timeout: Duration::from_secs(15),
            backoff: Backoff::default(),
            deploy_limit: DEPLOY_LIMIT,
            status_limit: STATUS_LIMIT,
            rate_limited_budget: Duration::from_secs(60),
        }
    }
}

/// Which rate limit a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Creating deployments or sessions.
    Deploy,
    /// Reading a deployment's or session's status.
    Status,
    /// Stops, deletes, app checks.
    Other,
    /// Deployment lists (Edgegap allows 10/s).
    List,
}

#[derive(Debug)]
struct Limits {
    deploy: Mutex<RateLimit>,
    status: Mutex<RateLimit>,
    other: Mutex<RateLimit>,
    list: Mutex<RateLimit>,
}

impl Limits {
    fn buckets(&self) -> [&Mutex<RateLimit>; 4] {
        [&self.deploy, &self.status, &self.other, &self.list]
    }

    /// How long to wait before a call of `limit` may go out.
    fn reserve(&self, limit: Limit) -> Duration {
        let bucket = match limit {
            Limit::Deploy => &self.deploy,
            Limit::Status => &self.status,
            Limit::Other => &self.other,
            Limit::List => &self.list,
        };
        bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(Instant::now())
    }
}

/// What a stop or delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Edgegap accepted the removal.
    Removed,
    /// It was already gone (404 or 410): nothing left to do.
    AlreadyGone,
}

/// A client of the Edgegap API. Cheap to clone; clones share the rate limits.
#[derive(Debug, Clone)]
pub struct EdgegapClient {
    http: reqwest::Client,
    base_url: Arc<str>,
    auth: HeaderValue,
    backoff: Backoff,
    rate_limited_budget: Duration,
    limits: Arc<Limits>,
    metrics: Option<crate::metrics::Metrics>,
}

/// The `Authorization` header value for `key`, accepted with or without its `token ` prefix.
pub fn authorization(key: &str) -> Result<HeaderValue, EdgegapError> {
    let key = key.trim();
    let key = key
        .strip_prefix("token ")
        .or_else(|| key.strip_prefix("Token "))
        .unwrap_or(key)
        .trim();
    if key.is_empty() {
        return Err(EdgegapError::BadKey("is empty"));
    }
    let mut value = HeaderValue::from_str(&format!("token {key}"))
        .map_err(|_| EdgegapError::BadKey("has characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}

impl EdgegapClient {
    /// A client for `config`. Fails when the key is empty or malformed.
    pub fn new(config: &EdgegapApiConfig) -> Result<Self, EdgegapError> {
        let auth = authorization(config.api_key.expose())?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("bevygap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EdgegapError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').into(),
            auth,
            backoff: config.backoff,
            rate_limited_budget: config.rate_limited_budget,
            limits: Arc::new(Limits {
                deploy: Mutex::new(RateLimit::new(config.deploy_limit.0, config.deploy_limit.1)),
                status: Mutex::new(RateLimit::new(config.status_limit.0, config.status_limit.1)),
                other: Mutex::new(RateLimit::new(config.status_limit.0, config.status_limit.1)),
                list: Mutex::new(RateLimit::new(
                    config.status_limit.0 / 3.0,
                    config.status_limit.1 / 2.0,
                )),
            }),
            metrics: None,
        })
    }

    /// Counts every call in `metrics` (by route and status).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Takes this process's part of the rate budget, shared by `processes` matchmakers on the
    /// same Edgegap account (see [`crate::presence`]).
    pub fn share_budget_among(&self, processes: usize) {
        for bucket in self.limits.buckets() {
            bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .share_among(processes);
        }
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /v2/deployments`: starts a deployment.
    pub async fn deploy(&self, request: &DeployRequest) -> Result<DeployAccepted, EdgegapError> {
        self.call(
            Limit::Deploy,
            Method::POST,
            "/v2/deployments",
            Some(request),
        )
        .await
    }

    /// `GET /v1/status/{request_id}`: a deployment's status.
    pub async fn deployment_status(
        &self,
        request_id: &str,
    ) -> Result<DeploymentStatus, EdgegapError> {
        let path = format!("/v1/status/{}", segment(request_id)?);
        self.call(Limit::Status, Method::GET, &path, None::<&()>)
            .await
    }

    /// `DELETE /v1/stop/{request_id}`: stops a deployment; one already gone counts as done.
    pub async fn stop_deployment(&self, request_id: &str) -> Result<Removal, EdgegapError> {
        let path = format!("/v1/stop/{}", segment(request_id)?);
        self.remove(&path).await
    }

    /// `POST /v1/session`: asks for seats for `ip_list` on a deployment of the app version.
    pub async fn create_session(
        &self,
        request: &SessionRequest,
    ) -> Result<SessionCreated, EdgegapError> {
        self.call(Limit::Deploy, Method::POST, "/v1/session", Some(request))
            .await
    }

    /// `GET /v1/session/{session_id}`: a session's status and linked deployment.
    pub async fn session(&self, session_id: &str) -> Result<SessionStatus, EdgegapError> {
        let path = format!("/v1/session/{}", segment(session_id)?);
        self.call(Limit::Status, Method::GET, &path, None::<&()>)
            .await
    }

    /// `DELETE /v1/session/{session_id}`: frees a session's seats; one already gone counts as done.
    pub async fn delete_session(&self, session_id: &str) -> Result<Removal, EdgegapError> {
        let path = format!("/v1/session/{}", segment(session_id)?);
        self.remove(&path).await
    }

    /// `GET /v1/app/{app_name}`.
    pub async fn app(&self, app_name: &str) -> Result<AppInfo, EdgegapError> {
        let path = format!("/v1/app/{}", segment(app_name)?);
        self.call(Limit::Other, Method::GET, &path, None::<&()>)
            .await
    }

    /// `GET /v1/app/{app_name}/version/{version_name}`.
    pub async fn app_version(
        &self,
        app_name: &str,
        version_name: &str,
    ) -> Result<VersionInfo, EdgegapError> {
        let path = format!(
            "/v1/app/{}/version/{}",
            segment(app_name)?,
            segment(version_name)?
        );
        self.call(Limit::Other, Method::GET, &path, None::<&()>)
            .await
    }

    /// `POST /v1/app/{app_name}/version`: a new version running `version`'s image.
    pub async fn create_version(
        &self,
        app_name: &str,
        version: &NewVersion,
    ) -> Result<VersionUpdated, EdgegapError> {
        let path = format!("/v1/app/{}/version", segment(app_name)?);
        self.call(Limit::Other, Method::POST, &path, Some(version))
            .await
    }

    /// `PATCH /v1/app/{app_name}/version/{version_name}` with new start arguments.
    pub async fn set_version_arguments(
        &self,
        app_name: &str,
        version_name: &str,
        arguments: &str,
    ) -> Result<VersionUpdated, EdgegapError> {
        let path = format!(
            "/v1/app/{}/version/{}",
            segment(app_name)?,
            segment(version_name)?
        );
        let body = serde_json::json!({ "arguments": arguments });
        self.call(Limit::Other, Method::PATCH, &path, Some(&body))
            .await
    }

    /// `GET /v1/deployments?page={page}`: one page of the account's deployments.
    pub async fn deployments_page(&self, page: u32) -> Result<DeploymentList, EdgegapError> {
        let path = format!(
            "/v1/deployments?page={}&limit={LIST_PAGE_SIZE}",
            page.max(1)
        );
        self.call(Limit::List, Method::GET, &path, None::<&()>)
            .await
    }

    /// Every deployment of the account, page after page (at most [`MAX_LIST_PAGES`] pages).
    pub async fn deployments(&self) -> Result<DeploymentList, EdgegapError> {
        let mut all = self.deployments_page(1).await?;
        let mut page = 1;
        while let Some(next) = all
            .pagination
            .as_ref()
            .filter(|p| p.has_next)
            .map(|p| p.next_page_number.unwrap_or(page + 1))
        {
            if page >= MAX_LIST_PAGES || next <= page {
                break;
            }
            page = next;
            let more = self.deployments_page(page).await?;
            all.data.extend(more.data);
            all.pagination = more.pagination;
        }
        Ok(all)
    }

    async fn remove(&self, path: &str) -> Result<Removal, EdgegapError> {
        match self
            .call::<serde_json::Value>(Limit::Other, Method::DELETE, path, None::<&()>)
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            Err(error) if error.means_already_deleted() => Ok(Removal::AlreadyGone),
            Err(error) => Err(error),
        }
    }

    /// One call with the rate limit and retries of retryable failures.
    async fn call<T: DeserializeOwned>(
        &self,
        limit: Limit,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, EdgegapError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| EdgegapError::BadRequest(e.to_string()))?;
        let attempts = self.backoff.attempts.max(1);
        let started = Instant::now();
        let mut failures = 0;
        let mut rate_limited = 0;
        loop {
            let wait = self.limits.reserve(limit);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let error = match self.once(method.clone(), path, body.clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let (retry, attempt, retry_after) = match &error {
                EdgegapError::RateLimited { retry_after } => {
                    rate_limited += 1;
                    let within = started.elapsed() < self.rate_limited_budget;
                    (within, rate_limited, *retry_after)
                }
                error if error.is_retryable() => {
                    failures += 1;
                    (failures < attempts, failures, None)
                }
                _ => (false, 0, None),
            };
            if !retry {
                return Err(error);
            }
            let backoff = match &error {
                // Edgegap's limits are per second: waiting longer than a couple of them is waste.
                EdgegapError::RateLimited { .. } => Backoff {
                    max: self.backoff.max.min(RATE_LIMITED_MAX_WAIT),
                    ..self.backoff
                },
                _ => self.backoff,
            };
            let delay = backoff.delay(attempt, retry_after, rand::random::<f64>());
            warn!(
                "Edgegap {method} {path}: {error}; retrying in {} ms",
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, EdgegapError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let sent = request.send().await;
        if let Some(metrics) = &self.metrics {
            let status = sent.as_ref().map_or(0, |r| r.status().as_u16());
            metrics.edgegap_call(method.as_str(), path, status);
        }
        let response = sent.map_err(|e| EdgegapError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(response).await?;
        debug!("Edgegap {method} {path}: {status}");
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(EdgegapError::from_status(
                status.as_u16(),
                &error_message(&text),
                retry_after.as_deref(),
            ));
        }
        let bytes = if bytes.is_empty() || status == StatusCode::NO_CONTENT {
            b"null".to_vec()
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| EdgegapError::Unexpected(format!("{method} {path}: {e}")))
    }
}

/// A path segment (app, version, deployment or session id), refused when it could change the path.
fn segment(value: &str) -> Result<&str, EdgegapError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value != "."
        && value != "..";
    if ok {
        Ok(value)
    } else {
        Err(EdgegapError::BadRequest(format!(
            "`{value}` is not a valid Edgegap name or id"
        )))
    }
}

/// Edgegap's error bodies are `{"message": "…"}`; anything else is kept as text.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, EdgegapError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| EdgegapError::Transport(e.without_url().to_string()))?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(EdgegapError::Unexpected(format!(
                "answer larger than {MAX_BODY} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_accepted_with_or_without_its_prefix_and_is_sensitive() {
        let with = authorization("token abc-123").unwrap();
        let without = authorization("abc-123").unwrap();
        assert_eq!(with, without);
        assert_eq!(with.to_str().unwrap(), "token abc-123");
        assert!(with.is_sensitive());
        assert!(format!("{with:?}").contains("Sensitive"));
        assert!(matches!(authorization("  "), Err(EdgegapError::BadKey(_))));
    }

    #[test]
    fn path_segments_cannot_escape_their_place() {
        assert!(segment("9f3a1c2b7d4e").is_ok());
        assert!(segment("v1.2").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(r#"{"message":"App not found"}"#),
            "App not found"
        );
        assert_eq!(error_message("plain"), "plain");
    }
}
