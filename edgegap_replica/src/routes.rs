//! HTTP routes: authentication, injected faults and rate limits, then the model's answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, Uri, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::Route;
use crate::state::{Answer, State};

type Shared = Extract<Arc<State>>;

/// The replica's router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v2/deployments", post(deploy))
        .route("/v1/status/{id}", get(status))
        .route("/v1/stop/{id}", axum::routing::delete(stop))
        .route("/v1/session", post(create_session))
        .route("/v1/session/{id}", get(session).delete(delete_session))
        .route("/v1/app/{app}", get(app))
        .route("/v1/app/{app}/version", post(create_version))
        .route(
            "/v1/app/{app}/version/{version}",
            get(version).patch(patch_version),
        )
        .route("/v1/deployments", get(list))
        .route("/v1/context/{id}/{n}", get(context))
        .route("/_replica/faults", post(inject).delete(clear))
        .with_state(state)
}

fn auth_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
}

fn to_response(state: &State, route: Route, uri: &Uri, (status, body): Answer) -> Response {
    state.record(route, uri.path().to_owned(), status);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

/// Authentication, then injected faults, then rate limits, then `answer`.
fn serve(
    state: &State,
    route: Route,
    uri: &Uri,
    headers: &HeaderMap,
    answer: impl FnOnce() -> Answer,
) -> Response {
    let result = if route != Route::Context && !state.authorized(auth_header(headers)) {
        (
            401,
            json!({"message": "Missing or invalid Authorization header: use `token <API key>`"}),
        )
    } else if let Some(injected) = state.faults.take(route) {
        let status = injected.status;
        match injected.body {
            Some(body) => {
                state.record(route, uri.path().to_owned(), status);
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return (code, body).into_response();
            }
            None => (status, json!({"message": format!("injected {status}")})),
        }
    } else if state.enforce_rate_limits && !state.limits.admit(route, Instant::now()) {
        (429, json!({"message": "Too many requests"}))
    } else {
        answer()
    };
    to_response(state, route, uri, result)
}

fn parse(body: &Bytes) -> Result<Value, Answer> {
    serde_json::from_slice(body)
        .map_err(|e| (400, json!({"message": format!("invalid JSON body: {e}")})))
}

async fn deploy(Extract(s): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    serve(&s, Route::Deploy, &uri, &headers, || {
        parse(&body).map_or_else(|a| a, |b| s.deploy(&b))
    })
}

async fn status(
    Extract(s): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::Status, &uri, &headers, || s.status(&id))
}

async fn stop(
    Extract(s): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::Stop, &uri, &headers, || s.stop(&id))
}

async fn create_session(Extract(s): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    serve(&s, Route::CreateSession, &uri, &headers, || {
        parse(&body).map_or_else(|a| a, |b| s.create_session(&b))
    })
}

async fn session(
    Extract(s): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::GetSession, &uri, &headers, || s.session(&id))
}

async fn delete_session(
    Extract(s): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::DeleteSession, &uri, &headers, || {
        s.delete_session(&id)
    })
}

async fn app(
    Extract(s): Shared,
    Path(app): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::App, &uri, &headers, || s.app(&app))
}

async fn version(
    Extract(s): Shared,
    Path((app, version)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::Version, &uri, &headers, || {
        s.version(&app, &version)
    })
}

async fn create_version(
    Extract(s): Shared,
    Path(app): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&s, Route::CreateVersion, &uri, &headers, || {
        parse(&body).map_or_else(|a| a, |b| s.create_version(&app, &b))
    })
}

async fn patch_version(
    Extract(s): Shared,
    Path((app, version)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&s, Route::PatchVersion, &uri, &headers, || {
        parse(&body).map_or_else(|a| a, |b| s.patch_version(&app, &version, &b))
    })
}

/// The `page` and `limit` query parameters of a list.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default = "one")]
    page: usize,
    #[serde(default = "hundred")]
    limit: usize,
}

fn hundred() -> usize {
    100
}

async fn list(
    Extract(s): Shared,
    Query(query): Query<ListQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&s, Route::ListDeployments, &uri, &headers, || {
        s.list(query.page, query.limit)
    })
}

async fn context(Extract(s): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    serve(&s, Route::Context, &uri, &headers, || {
        s.context(&path, auth_header(&headers))
    })
}

/// `POST /_replica/faults`: `{"route": "deploy", "status": 429, "count": 10}`.
#[derive(Deserialize)]
struct FaultRequest {
    route: Route,
    status: u16,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

async fn inject(Extract(s): Shared, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRequest>(&body) {
        Ok(fault) => {
            s.faults.inject(fault.route, fault.status, fault.count);
            (StatusCode::OK, axum::Json(json!({"injected": fault.count}))).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": format!("expected {{route, status, count}}: {e}")})),
        )
            .into_response(),
    }
}

async fn clear(Extract(s): Shared) -> Response {
    s.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}
