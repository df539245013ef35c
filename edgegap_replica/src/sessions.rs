//! Seat sessions: `POST /v1/session`, `GET`/`DELETE /v1/session/{id}`.

use std::time::Instant;

use serde_json::{Value, json};

use crate::state::{
    Answer, ERROR, READY, SEEKING, State, TERMINATED, message, random_id, timestamp, unix_now,
};

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) app: String,
    pub(crate) version: String,
    pub(crate) ips: Vec<String>,
    pub(crate) deployment: String,
    pub(crate) created: Instant,
}

impl State {
    /// `POST /v1/session`: links to a deployment of the version with a free seat, or starts one.
    pub fn create_session(&self, body: &Value) -> Answer {
        let Some(app) = body.get("app_name").and_then(Value::as_str) else {
            return (400, message("app_name is required"));
        };
        let Some(version) = body.get("version_name").and_then(Value::as_str) else {
            return (400, message("version_name is required"));
        };
        let ips: Vec<String> = body
            .get("ip_list")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            return (400, message("ip_list must hold at least one IP"));
        }
        let seats = u32::try_from(ips.len()).unwrap_or(u32::MAX);
        let existing = {
            let inner = self.lock();
            if let Err(answer) = Self::find_version(&inner, app, version) {
                return answer;
            }
            inner
                .deployments
                .values()
                .filter(|d| !d.stopped && d.app == app && d.version == version)
                .find(|d| {
                    let used: usize = inner
                        .sessions
                        .values()
                        .filter(|s| s.deployment == d.request_id)
                        .map(|s| s.ips.len())
                        .sum();
                    u32::try_from(used)
                        .unwrap_or(u32::MAX)
                        .saturating_add(seats)
                        <= self.sockets
                })
                .map(|d| d.request_id.clone())
        };
        let deployment = match existing {
            Some(id) => id,
            None => match self.create_deployment(
                app,
                version,
                ips.clone(),
                Vec::new(),
                vec!["session".into()],
            ) {
                Ok(id) => id,
                Err(answer) => return answer,
            },
        };
        let session_id = format!("{}-S", random_id());
        self.lock().sessions.insert(
            session_id.clone(),
            Session {
                app: app.to_owned(),
                version: version.to_owned(),
                ips,
                deployment: deployment.clone(),
                created: Instant::now(),
            },
        );
        (
            200,
            json!({
                "session_id": session_id, "custom_id": Value::Null, "app": app, "version": version,
                "deployment_request_id": deployment, "selectors": [], "webhook_url": body.get("webhook_url"),
            }),
        )
    }

    /// `GET /v1/session/{session_id}`.
    pub fn session(&self, session_id: &str) -> Answer {
        let inner = self.lock();
        let Some(session) = inner.sessions.get(session_id) else {
            return (404, message(format!("Session {session_id} not found")));
        };
        let now = Instant::now();
        let deployment = inner.deployments.get(&session.deployment);
        let status = deployment.map_or(ERROR, |d| d.status(now));
        let (session_status, ready, error) = match status {
            READY => (READY, true, Value::Null),
            ERROR | TERMINATED => (ERROR, false, json!("The linked deployment failed")),
            _ => (SEEKING, false, Value::Null),
        };
        let users: Vec<Value> = session.ips.iter().map(|ip| json!({"ip": ip})).collect();
        (
            200,
            json!({
                "session_id": session_id, "custom_id": Value::Null, "status": session_status,
                "ready": ready, "linked": ready, "kind": "Seat",
                "user_count": session.ips.len(), "app_version": 1,
                "app_name": session.app, "version_name": session.version,
                "create_time": timestamp(unix_now().saturating_sub(now.saturating_duration_since(session.created).as_secs())),
                "elapsed": now.saturating_duration_since(session.created).as_secs(),
                "error": error, "session_users": users, "session_ips": users,
                "deployment": if ready { deployment.map(|d| self.deployment_json(d, now)) } else { None },
                "webhook_url": Value::Null,
            }),
        )
    }

    /// `DELETE /v1/session/{session_id}`: frees the seats; the deployment stays.
    pub fn delete_session(&self, session_id: &str) -> Answer {
        match self.lock().sessions.remove(session_id) {
            Some(session) => (
                200,
                json!({
                    "message": format!("Session {session_id} of deployment {} deleted", session.deployment),
                    "session_id": session_id, "custom_id": Value::Null,
                }),
            ),
            None => (404, message(format!("Session {session_id} not found"))),
        }
    }
}
