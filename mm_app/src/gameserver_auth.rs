//! Game servers get NATS credentials for their own deployment only, through nats-server's auth
//! callout.
//!
//! A game server runs on a machine the studio does not control, so its NATS user must not be
//! able to touch another server's lease, seats or connection records, the buckets' settings, or
//! another app. nats-server hands every connection that is not one of its `auth_users` to a
//! callout service (`$SYS.REQ.USER.AUTH`); the matchmakers of the app serve it as one queue group:
//!
//! 1. A game server connects as `{app}:{deployment}` with the deployment's password, an HMAC of
//!    the app and deployment under a key derived from the callout key
//!    ([`GameServerAuth::credentials`]). Whoever starts the server passes them: the local fleet
//!    does it for each child; for a static list, `bevygap_gameserver_auth credentials` prints them.
//! 2. The matchmaker checks the password (any matchmaker of the app can: there is no state) and
//!    answers with a user JWT signed by the callout key, whose permissions name only that
//!    deployment's keys ([`GameServerAuth::permissions`]), valid for `jwt_ttl` (the server then
//!    reconnects and is checked again).
//! 3. A wrong password gets a signed refusal; a user of another app gets no answer from this
//!    app's matchmakers (nats-server refuses it when its callout times out).
//!
//! On Edgegap a deployment is named only once it is created, so no password can be handed to
//! it in advance. There the game server proves who it is with what only that deployment holds:
//! its context API path and token (`ARBITRIUM_CONTEXT_URL`, `ARBITRIUM_CONTEXT_TOKEN`), sent as
//! the password `edgegap-context:{n}:{token}`. The matchmaker asks Edgegap's context API itself
//! (at its own configured base URL, `/v1/context/{deployment}/{n}`) and accepts only an answer
//! for that same deployment; a deployment that has ended no longer answers.
//!
//! The callout key is an account nkey seed (`SA…`): nats-server is configured with its public
//! key (`A…`) as the callout issuer (`assets/nats-auth.conf`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bevygap_shared::context_env::EDGEGAP_CONTEXT_PASSWORD;
use bevygap_shared::names::{AppNames, KeyToken};
use bevygap_shared::nats::NatsConnection;
use bevygap_shared::secret::{Secret, same_secret};
use bevygap_shared::time::now_millis;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use nkeys::KeyPair;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::nats_jwt::{self, JwtError};

/// The subject nats-server sends authorization requests to.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// The account game servers are placed in: the global account of a configuration without
/// `accounts` (as in `assets/nats-auth.conf`).
pub const PLACEMENT_ACCOUNT: &str = "$G";
/// Longest wait for Edgegap's context API while nats-server holds the connection (its
/// `authorization.timeout` in `assets/nats-auth.conf` is 5 s).
pub const EDGEGAP_CONTEXT_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a game server's user JWT is valid by default; it reconnects and is checked again.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(3600);

/// How the matchmaker signs game servers' NATS users.
#[derive(Clone)]
pub struct GameServerAuthConfig {
    /// The callout key: an account nkey seed (`SA…`).
    pub seed: Secret,
    /// How long a user JWT is valid.
    pub jwt_ttl: Duration,
}

impl fmt::Debug for GameServerAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GameServerAuthConfig")
            .field("seed", &"<redacted>")
            .field("jwt_ttl", &self.jwt_ttl)
            .finish()
    }
}

/// The callout key is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthKeyError {
    /// Not an nkey seed at all.
    #[error(
        "the game-server auth key is not an nkey seed; make one with `bevygap_gameserver_auth new-key`"
    )]
    NotASeed,
    /// A seed of another kind (user, operator...).
    #[error(
        "the game-server auth key must be an account seed (starting `SA`), found another kind; make one with `bevygap_gameserver_auth new-key`"
    )]
    NotAnAccount,
}

/// A fresh callout key: its seed (for the matchmakers) and public key (for nats-server's
/// `auth_callout.issuer`).
pub fn new_key() -> (Secret, String) {
    let key = KeyPair::new_account();
    // A key pair made by `new_account` always has its seed.
    let seed = key.seed().unwrap_or_default();
    (Secret::new(seed), key.public_key())
}

/// What a game server of one deployment connects with.
#[derive(Clone)]
pub struct GameServerCredentials {
    /// `NATS_USER`: `{app}:{deployment}`.
    pub user: String,
    /// `NATS_PASSWORD`.
    pub password: Secret,
}

impl fmt::Debug for GameServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GameServerCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Subjects a user may publish to and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Allowed publish subjects.
    pub publish: Vec<String>,
    /// Allowed subscriptions.
    pub subscribe: Vec<String>,
}

/// Why a game server was refused: always the peer's doing (or an attack).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// The user names no valid deployment.
    #[error("user `{user}` names no valid deployment ({reason})")]
    BadUser {
        /// The user name presented (escaped, capped).
        user: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The password is not the deployment's.
    #[error("wrong password for deployment `{0}`")]
    WrongPassword(KeyToken),
    /// Edgegap's context API did not confirm the deployment.
    #[error("Edgegap did not confirm deployment `{deployment}`: {reason}")]
    NotConfirmed {
        /// The deployment claimed.
        deployment: KeyToken,
        /// What the context API said.
        reason: String,
    },
}

/// Asks Edgegap's context API whether a game server holds a deployment's context token.
#[derive(Debug, Clone)]
pub struct EdgegapContextCheck {
    /// The API's base URL (the matchmaker's `--edgegap-url`), never one a game server names.
    pub base_url: String,
    /// The HTTP client (with its timeout).
    pub client: reqwest::Client,
}

impl EdgegapContextCheck {
    /// A check against `base_url`, each answer awaited at most `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
        }
    }

    async fn confirm(&self, deployment: &KeyToken, proof: &str) -> Result<(), String> {
        let (n, token) = proof
            .split_once(':')
            .ok_or("the proof is not `{n}:{token}`")?;
        if n.is_empty() || n.len() > 32 || !n.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("the context path part is not alphanumeric".into());
        }
        if token.is_empty() || token.len() > 512 || token.chars().any(|c| !c.is_ascii_graphic()) {
            return Err("the context token is empty, too long or not printable".into());
        }
        let url = format!("{}/v1/context/{deployment}/{n}", self.base_url);
        let response = self
            .client
            .get(url)
            .header(reqwest::header::AUTHORIZATION, token)
            .send()
            .await
            .map_err(|e| format!("context API unreachable: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("context API answered {}", response.status()));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("unexpected context API answer: {}", e.without_url()))?;
        if answer.get("request_id").and_then(Value::as_str) != Some(deployment.as_str()) {
            return Err("the context belongs to another deployment".into());
        }
        let status = answer
            .get("status")
            .or_else(|| answer.get("current_status"));
        match status.and_then(Value::as_str) {
            Some(status) if status.contains("TERMINAT") || status.contains("ERROR") => {
                Err(format!("the deployment has ended ({status})"))
            }
            _ => Ok(()),
        }
    }
}

/// One authorization request, read.
#[derive(Debug)]
struct Request {
    user_nkey: String,
    server_id: String,
    user: String,
    password: Secret,
}

/// What to do with one authorization request.
#[derive(Debug)]
pub enum CalloutAnswer {
    /// Not a game server of this app: stay silent (another app's matchmakers answer).
    NotOurs,
    /// Not a valid request from nats-server: nothing can be answered.
    Unreadable(JwtError),
    /// Send `token` to the request's reply subject.
    Reply {
        /// The signed authorization response.
        token: String,
        /// The deployment authorized, or why not.
        outcome: Result<KeyToken, Refusal>,
    },
}

/// Signs game servers' NATS users for one app.
pub struct GameServerAuth {
    issuer: KeyPair,
    password_key: [u8; 32],
    names: AppNames,
    jwt_ttl: Duration,
    edgegap: Option<EdgegapContextCheck>,
}

impl fmt::Debug for GameServerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GameServerAuth")
            .field("issuer", &self.issuer.public_key())
            .field("app", &self.names.app())
            .field("jwt_ttl", &self.jwt_ttl)
            .finish_non_exhaustive()
    }
}

impl GameServerAuth {
    /// The signer for `names`' app with `config`'s key.
    pub fn new(config: &GameServerAuthConfig, names: AppNames) -> Result<Self, AuthKeyError> {
        let seed = config.seed.expose().trim();
        let issuer = KeyPair::from_seed(seed).map_err(|_| AuthKeyError::NotASeed)?;
        if !issuer.public_key().starts_with('A') {
            return Err(AuthKeyError::NotAnAccount);
        }
        let mut digest = Sha256::new();
        digest.update(b"bevygap game server password key\n");
        digest.update(seed.as_bytes());
        Ok(Self {
            issuer,
            password_key: digest.finalize().into(),
            names,
            jwt_ttl: config.jwt_ttl.max(Duration::from_secs(1)),
            edgegap: None,
        })
    }

    /// Also accepts game servers on Edgegap that prove their deployment through its context API.
    pub fn with_edgegap(mut self, check: EdgegapContextCheck) -> Self {
        self.edgegap = Some(check);
        self
    }

    /// The public key nats-server's `auth_callout.issuer` must name.
    pub fn issuer_public_key(&self) -> String {
        self.issuer.public_key()
    }

    /// The user and password a game server of `deployment` connects with.
    pub fn credentials(&self, deployment: &KeyToken) -> GameServerCredentials {
        GameServerCredentials {
            user: format!("{}:{deployment}", self.names.app()),
            password: Secret::new(self.password(deployment)),
        }
    }

    fn password(&self, deployment: &KeyToken) -> String {
        // HMAC accepts a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.password_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{}\n{deployment}", self.names.app()).as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// What a game server of `deployment` may do: keep its lease, take and free its own seats
    /// (compare-and-set writes and reads by subject), watch its own seats, record its own
    /// connections, read the three buckets' settings, and receive replies on its own inbox
    /// prefix. Nothing else: no other deployment's keys, no bucket settings, no other bucket or
    /// app.
    pub fn permissions(&self, deployment: &KeyToken) -> Permissions {
        let names = &self.names;
        let (leases, seats, connections) = (
            names.leases_bucket(),
            names.reservations_bucket(),
            names.connections_bucket(),
        );
        Permissions {
            publish: vec![
                "$JS.API.INFO".to_owned(),
                format!("$JS.API.STREAM.INFO.KV_{leases}"),
                format!("$JS.API.STREAM.INFO.KV_{seats}"),
                format!("$JS.API.STREAM.INFO.KV_{connections}"),
                format!("$KV.{leases}.{deployment}"),
                format!("$KV.{seats}.{deployment}.*"),
                format!("$KV.{connections}.{deployment}.*"),
                format!("$JS.API.DIRECT.GET.KV_{seats}.$KV.{seats}.{deployment}.*"),
                format!("$JS.API.CONSUMER.CREATE.KV_{seats}.*.$KV.{seats}.{deployment}.>"),
                format!("$JS.FC.KV_{seats}.>"),
            ],
            subscribe: vec![format!("{}.>", names.gameserver_inbox_prefix(deployment))],
        }
    }

    /// Answers one authorization request (the JWT nats-server published) at `now_secs`.
    pub async fn answer(&self, request: &[u8], now_secs: u64) -> CalloutAnswer {
        let request = match read_request(request) {
            Ok(request) => request,
            Err(error) => return CalloutAnswer::Unreadable(error),
        };
        let Some(deployment) = request
            .user
            .strip_prefix(self.names.app())
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            return CalloutAnswer::NotOurs;
        };
        let outcome = match KeyToken::new("deployment id", deployment) {
            Err(error) => Err(Refusal::BadUser {
                user: bevygap_shared::untrusted::Untrusted(&request.user).to_string(),
                reason: error.to_string(),
            }),
            Ok(deployment) => self.check(deployment, &request.password).await,
        };
        CalloutAnswer::Reply {
            token: self.respond(&request, &outcome, now_secs),
            outcome,
        }
    }

    async fn check(&self, deployment: KeyToken, password: &Secret) -> Result<KeyToken, Refusal> {
        let presented = password.expose();
        if let (Some(proof), Some(edgegap)) = (
            presented.strip_prefix(EDGEGAP_CONTEXT_PASSWORD),
            &self.edgegap,
        ) {
            return match edgegap.confirm(&deployment, proof).await {
                Ok(()) => Ok(deployment),
                Err(reason) => Err(Refusal::NotConfirmed { deployment, reason }),
            };
        }
        if same_secret(self.password(&deployment).as_bytes(), presented.as_bytes()) {
            Ok(deployment)
        } else {
            Err(Refusal::WrongPassword(deployment))
        }
    }

    fn respond(&self, request: &Request, outcome: &Result<KeyToken, Refusal>, now: u64) -> String {
        let verdict = match outcome {
            Ok(deployment) => json!({
                "jwt": self.user_jwt(&request.user_nkey, &request.user, deployment, now),
                "type": "authorization_response",
                "version": 2,
            }),
            Err(refusal) => json!({
                "error": refusal.to_string(),
                "type": "authorization_response",
                "version": 2,
            }),
        };
        let mut response = Map::new();
        response.insert("sub".into(), json!(request.user_nkey));
        response.insert("aud".into(), json!(request.server_id));
        response.insert("nats".into(), verdict);
        nats_jwt::encode(response, &self.issuer, now)
    }

    fn user_jwt(&self, user_nkey: &str, user: &str, deployment: &KeyToken, now: u64) -> String {
        let permissions = self.permissions(deployment);
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(user_nkey));
        claims.insert("aud".into(), json!(PLACEMENT_ACCOUNT));
        claims.insert("name".into(), json!(user));
        claims.insert("exp".into(), json!(now + self.jwt_ttl.as_secs()));
        claims.insert(
            "nats".into(),
            json!({
                "pub": { "allow": permissions.publish },
                "sub": { "allow": permissions.subscribe },
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            }),
        );
        nats_jwt::encode(claims, &self.issuer, now)
    }
}

/// Reads the request nats-server signed: who connects, with what, on which server.
fn read_request(bytes: &[u8]) -> Result<Request, JwtError> {
    let claims = nats_jwt::decode_verified(&String::from_utf8_lossy(bytes), 'N')?;
    let nats = claims.get("nats").cloned().unwrap_or_default();
    let field = |path: &[&str]| {
        path.iter()
            .try_fold(&nats, |value, key| value.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let request = Request {
        user_nkey: field(&["user_nkey"]),
        server_id: field(&["server_id", "id"]),
        user: field(&["connect_opts", "user"]),
        password: Secret::new(field(&["connect_opts", "pass"])),
    };
    if !request.user_nkey.starts_with('U') || !request.server_id.starts_with('N') {
        return Err(JwtError::Malformed(
            "no user nkey or server id in the request",
        ));
    }
    Ok(request)
}

/// Serves the callout for this app until the connection closes: one queue group per app, so
/// one matchmaker answers each request.
pub async fn serve_callout(
    nats: &NatsConnection,
    auth: Arc<GameServerAuth>,
) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
    let client = nats.client().clone();
    let queue = format!("bevygap-callout-{}", auth.names.app());
    let mut requests = client.queue_subscribe(CALLOUT_SUBJECT, queue).await?;
    info!(
        "game-server auth callout for `{}` (issuer {})",
        auth.names.app(),
        auth.issuer_public_key()
    );
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply.clone() else {
                continue;
            };
            // Each request on its own task: an Edgegap check waits on HTTP.
            let (auth, client) = (auth.clone(), client.clone());
            tokio::spawn(async move {
                let token = match auth.answer(&request.payload, now_millis() / 1000).await {
                    CalloutAnswer::NotOurs => return,
                    CalloutAnswer::Unreadable(error) => {
                        warn!(
                            "auth callout: ignored a request that is not from nats-server ({error})"
                        );
                        return;
                    }
                    CalloutAnswer::Reply { token, outcome } => {
                        match outcome {
                            Ok(deployment) => {
                                info!(%deployment, "auth callout: game server authorized")
                            }
                            Err(refusal) => warn!(
                                "auth callout: game server refused: {refusal}; check its NATS_USER/NATS_PASSWORD (see `bevygap_gameserver_auth credentials`)"
                            ),
                        }
                        token
                    }
                };
                if let Err(error) = client.publish(reply, token.into()).await {
                    warn!(
                        "auth callout: answer not sent ({error}); nats-server refuses the client when its wait ends"
                    );
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn auth() -> GameServerAuth {
        let (seed, _) = new_key();
        GameServerAuth::new(
            &GameServerAuthConfig {
                seed,
                jwt_ttl: DEFAULT_JWT_TTL,
            },
            AppNames::new("g").unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_request_not_signed_by_a_nats_server_is_not_answered() {
        let auth = auth();
        for request in [&b"garbage"[..], b"a.b.c", b""] {
            assert!(matches!(
                auth.answer(request, 1).await,
                CalloutAnswer::Unreadable(_)
            ));
        }
        // Signed, but by an account key rather than a server's.
        let forged = nats_jwt::encode(Map::new(), &KeyPair::new_account(), 1);
        assert!(matches!(
            auth.answer(forged.as_bytes(), 1).await,
            CalloutAnswer::Unreadable(JwtError::Issuer(_))
        ));
    }

    #[test]
    fn a_user_seed_is_not_a_callout_key() {
        let user = Secret::new(KeyPair::new_user().seed().unwrap());
        let config = GameServerAuthConfig {
            seed: user,
            jwt_ttl: DEFAULT_JWT_TTL,
        };
        assert_eq!(
            GameServerAuth::new(&config, AppNames::new("g").unwrap()).unwrap_err(),
            AuthKeyError::NotAnAccount
        );
    }
}
