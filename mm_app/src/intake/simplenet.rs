//! The `/ws` endpoint `bevygap_client_plugin` uses: the `bevy_simplenet` wire protocol, served by
//! the matchmaker itself.
//!
//! The client is `bevy_simplenet`'s, unchanged. What goes over the socket:
//! - the upgrade is `GET /ws?v={protocol version}&t={0 native | 1 browser}`, nothing else;
//! - each message is one binary frame, `bincode` with its default options (varint integers):
//!   the client sends [`ToServer`] (first `Authenticate` with its [`ClientHello`], then requests
//!   with the id it chose, and messages), the server [`ToClient`] (statuses, and exactly one
//!   `Response` per request id);
//! - native clients ping with websocket pings; browser clients with text `ping:{ms}`, answered
//!   `pong:{ms}`.
//!
//! Serving it here (rather than with `bevy_simplenet`'s server) is what makes the endpoint
//! bounded: a per-address cap like the JSON endpoint's, 4 KiB websocket buffers instead of 128 KiB
//! (an idle client costs a few KiB), the listener's header and handshake timeouts, an idle cut-off,
//! and answers that are never dropped — each connection owns its ticket's updates, and a client
//! whose answer cannot be written within [`SEND_TIMEOUT`] is closed (1011, "answer not
//! delivered; ask again").
//!
//! Progress statuses wait [`STATUS_GRACE`] before they are sent, and are dropped when the answer
//! comes first: a seat on a running server is answered with the token alone.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bevy_simplenet::AuthRequest;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::{
    CHANNEL_PROTOCOL_VERSION, ClientHello, ClientMsg, MatchError, MatchMode, MatchRequest,
    MatchResult, MatchStatus, ServerMsg,
};
use bevygap_shared::untrusted::Untrusted;
use bincode::Options;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::debug;

use super::Endpoint;
use super::limits::{ConnectionSlot, RateLimiter, client_ip};
use crate::messages::{TicketCancelled, TicketRequested};
use crate::metrics::SIMPLENET;
use crate::ticket::{TicketId, TicketResponder, TicketUpdate};

/// How long a status is held back in case the answer follows.
pub const STATUS_GRACE: Duration = Duration::from_millis(50);
/// How long a client has to authenticate after the upgrade.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(3);
/// A client that sends nothing (not even a ping; clients ping every 5 s) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait to write one message; a client that does not read is closed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Websocket read buffer: frames here are a few hundred bytes.
const READ_BUFFER: usize = 4096;

/// What a client sends (`bevy_simplenet`'s server meta event, same variant order).
#[derive(Debug, Serialize, Deserialize)]
pub enum ToServer {
    /// The first message: who the client is.
    Authenticate(ClientAuth),
    /// A plain message.
    Msg(ClientMsg),
    /// A request with the id the client chose.
    Request(MatchRequest, u64),
}

/// The first message's content.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientAuth {
    /// The client's credentials (the matchmaker accepts any; players are checked per request).
    pub auth: AuthRequest,
    /// The game and build.
    pub msg: ClientHello,
}

/// What the server sends (`bevy_simplenet`'s client meta event, same variant order).
#[derive(Debug, Serialize, Deserialize)]
pub enum ToClient {
    /// A plain message.
    Msg(ServerMsg),
    /// The answer to a request.
    Response(MatchResult, u64),
    /// A request acknowledged without an answer (unused).
    Ack(u64),
    /// A request rejected without an answer (unused).
    Reject(u64),
}

/// `bevy_simplenet`'s encoding, with a ceiling on what one decode may allocate (the limit
/// does not change the bytes).
fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(64 * 1024)
}

/// Encodes a message for the client.
pub fn encode(message: &ToClient) -> Vec<u8> {
    codec().serialize(message).unwrap_or_default()
}

/// Decodes a client's message: `None` for anything that is not one (the client is closed).
pub fn decode(bytes: &[u8]) -> Option<ToServer> {
    codec().deserialize(bytes).ok()
}

/// Whether the upgrade's query is exactly what the client sends: `v={version}&t={0|1}`.
/// Returns whether the client runs in a browser.
fn check_query(uri: &Uri) -> Result<bool, (StatusCode, String)> {
    let mut pairs = uri.query().unwrap_or_default().split('&');
    let bad = |text: &str| (StatusCode::BAD_REQUEST, text.to_owned());
    let version = pairs.next().and_then(|p| p.strip_prefix("v="));
    if version != Some(CHANNEL_PROTOCOL_VERSION) {
        return Err(bad(&format!(
            "protocol version mismatch: this matchmaker speaks {CHANNEL_PROTOCOL_VERSION}; update the client"
        )));
    }
    let browser = match pairs.next().and_then(|p| p.strip_prefix("t=")) {
        Some("0") => false,
        Some("1") => true,
        _ => return Err(bad("missing or unknown client type (t=0 or t=1)")),
    };
    if pairs.next().is_some() {
        return Err(bad("unexpected query parameters"));
    }
    Ok(browser)
}

/// The axum handler for `GET /ws`.
pub async fn simplenet_ws_handler(
    State(endpoint): State<Endpoint>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let browser = match check_query(&uri) {
        Ok(browser) => browser,
        Err(refusal) => return refusal.into_response(),
    };
    let ip = client_ip(peer, &headers, &endpoint.trusted_proxies);
    let slot = match endpoint.limiter.acquire(ip) {
        Ok(slot) => slot,
        Err(refused) => {
            debug!("/ws: refused {ip}: {refused}");
            if let Some(metrics) = &endpoint.metrics {
                metrics.connection_refused(SIMPLENET);
            }
            return (StatusCode::TOO_MANY_REQUESTS, refused.to_string()).into_response();
        }
    };
    let frame_cap = endpoint.limits.max_message_bytes.max(256);
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(frame_cap)
        .max_frame_size(frame_cap)
        .on_upgrade(move |socket| {
            Connection {
                socket,
                endpoint,
                ip,
                browser,
                pending: None,
                _slot: slot,
            }
            .run()
        })
}

/// The request a connection waits on.
struct Pending {
    /// The client's id for it.
    request_id: u64,
    ticket_id: TicketId,
    updates: mpsc::UnboundedReceiver<(TicketId, TicketUpdate)>,
    /// When the request arrived.
    requested_at: tokio::time::Instant,
    /// A status waiting out [`STATUS_GRACE`].
    held: Option<MatchStatus>,
    held_until: tokio::time::Instant,
}

/// Why a connection ends.
enum End {
    /// The client closed or went away.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// One client's socket, with at most one request pending.
struct Connection {
    socket: WebSocket,
    endpoint: Endpoint,
    ip: IpAddr,
    browser: bool,
    pending: Option<Pending>,
    _slot: ConnectionSlot,
}

/// Close codes: policy violation, internal error.
const POLICY: u16 = 1008;
const UNDELIVERED: u16 = 1011;

impl Connection {
    async fn run(mut self) {
        let end = match self.authenticate().await {
            Ok(hello) => self.serve(hello).await,
            Err(end) => end,
        };
        if let Some(pending) = self.pending.take() {
            self.endpoint
                .cancels
                .send(TicketCancelled {
                    ticket_id: pending.ticket_id,
                })
                .await;
        }
        if let End::Close(code, reason) = end {
            let close = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.send(close)).await;
        }
    }

    async fn authenticate(&mut self) -> Result<ClientHello, End> {
        let first = tokio::time::timeout(AUTH_TIMEOUT, self.socket.recv()).await;
        match first {
            Err(_) => Err(End::Close(POLICY, "no auth received")),
            Ok(None | Some(Err(_))) => Err(End::Gone),
            Ok(Some(Ok(Message::Binary(bytes)))) => match decode(&bytes) {
                Some(ToServer::Authenticate(ClientAuth { msg, .. })) => {
                    debug!(
                        "/ws: client from {} connected ({})",
                        self.ip,
                        Untrusted(&msg.client_build)
                    );
                    Ok(msg)
                }
                _ => Err(End::Close(POLICY, "authenticate first")),
            },
            Ok(Some(Ok(_))) => Err(End::Close(POLICY, "authenticate first")),
        }
    }

    async fn serve(&mut self, hello: ClientHello) -> End {
        let mut rate = RateLimiter::new(self.endpoint.limits.messages_per_second);
        let idle = tokio::time::sleep(IDLE_TIMEOUT);
        tokio::pin!(idle);
        loop {
            let has_pending = self.pending.is_some();
            let held_until = self
                .pending
                .as_ref()
                .filter(|p| p.held.is_some())
                .map(|p| p.held_until);
            tokio::select! {
                incoming = self.socket.recv() => {
                    idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                    let message = match incoming {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(message)) => message,
                    };
                    if let Err(end) = self.receive(message, &hello, &mut rate).await {
                        return end;
                    }
                }
                update = next_update(&mut self.pending), if has_pending => {
                    if let Err(end) = self.forward(update).await {
                        return end;
                    }
                }
                () = sleep_until(held_until), if held_until.is_some() => {
                    let status = self.pending.as_mut().and_then(|p| p.held.take());
                    if let Some(status) = status
                        && let Err(end) = self.send(&ToClient::Msg(ServerMsg::Status(status))).await
                    {
                        return end;
                    }
                }
                () = &mut idle => return End::Close(POLICY, "idle"),
            }
        }
    }

    /// Handles one message from the client.
    async fn receive(
        &mut self,
        message: Message,
        hello: &ClientHello,
        rate: &mut RateLimiter,
    ) -> Result<(), End> {
        if let Message::Text(text) = &message
            && self.browser
            && let Some(stamp) = text.strip_prefix("ping:")
        {
            // A browser's keep-alive.
            let pong = Message::Text(format!("pong:{stamp}").into());
            return self.write(pong).await;
        }
        if !rate.allow() {
            debug!("/ws: {} is over its message rate; closing", self.ip);
            return Err(End::Close(POLICY, "message rate exceeded"));
        }
        let Message::Binary(bytes) = message else {
            return Err(End::Close(POLICY, "binary messages only"));
        };
        match decode(&bytes) {
            Some(ToServer::Request(request, id)) => self.request(request, id, hello).await,
            Some(ToServer::Msg(ClientMsg::Cancel)) => {
                if let Some(pending) = &self.pending {
                    self.endpoint
                        .cancels
                        .send(TicketCancelled {
                            ticket_id: pending.ticket_id.clone(),
                        })
                        .await;
                }
                Ok(())
            }
            Some(ToServer::Authenticate(_)) => Err(End::Close(POLICY, "already authenticated")),
            None => Err(End::Close(POLICY, "not a matchmaker message")),
        }
    }

    async fn request(
        &mut self,
        request: MatchRequest,
        id: u64,
        hello: &ClientHello,
    ) -> Result<(), End> {
        let metrics = self.endpoint.metrics.clone();
        let refuse = |code: ErrorCode, text: String| {
            if let Some(metrics) = &metrics {
                metrics.request_failed(SIMPLENET, code.code());
            }
            ToClient::Response(MatchResult::Failed(MatchError::new(code, text)), id)
        };
        if self.pending.is_some() {
            let text = "a request is already pending; cancel it first".to_owned();
            return self.send(&refuse(ErrorCode::BadRequest, text)).await;
        }
        if let Err(error) = hello.game.validate() {
            return self
                .send(&refuse(ErrorCode::BadRequest, error.to_string()))
                .await;
        }
        if let MatchMode::Queue(queue) = &request.mode
            && let Err(error) = queue.validate()
        {
            return self
                .send(&refuse(ErrorCode::BadRequest, error.to_string()))
                .await;
        }
        if let Some(players) = &self.endpoint.players
            && let Err(refused) = players.verify(request.player_token.as_deref())
        {
            debug!("/ws: client from {} refused: {refused}", self.ip);
            return self
                .send(&refuse(refused.code(), refused.to_string()))
                .await;
        }
        let ticket_id = TicketId::generate();
        let (tx, updates) = mpsc::unbounded_channel();
        let accepted = self
            .endpoint
            .requests
            .send(TicketRequested {
                ticket_id: ticket_id.clone(),
                game: hello.game.clone(),
                client_ip: Some(self.ip),
                region_pings: request.region_pings,
                queue: match request.mode {
                    MatchMode::Seat => None,
                    MatchMode::Queue(queue) => Some(queue),
                },
                responder: TicketResponder(tx),
            })
            .await;
        if !accepted {
            let text = "the matchmaker is shutting down".to_owned();
            return self.send(&refuse(ErrorCode::ShuttingDown, text)).await;
        }
        self.pending = Some(Pending {
            request_id: id,
            ticket_id,
            updates,
            requested_at: tokio::time::Instant::now(),
            held: None,
            held_until: tokio::time::Instant::now(),
        });
        Ok(())
    }

    /// Passes a ticket's update on: statuses after [`STATUS_GRACE`], the result at once.
    async fn forward(&mut self, update: Option<TicketUpdate>) -> Result<(), End> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(());
        };
        match update {
            Some(TicketUpdate::Status(status)) => {
                if pending.held.is_none() {
                    pending.held_until = tokio::time::Instant::now() + STATUS_GRACE;
                }
                pending.held = Some(status);
                Ok(())
            }
            Some(TicketUpdate::Result(result)) => {
                let id = pending.request_id;
                if let Some(metrics) = &self.endpoint.metrics {
                    match &result {
                        MatchResult::Ready(_) | MatchResult::Matched(_) => {
                            metrics.token_issued(SIMPLENET, pending.requested_at.elapsed());
                        }
                        MatchResult::Failed(error) => {
                            metrics.request_failed(SIMPLENET, error.code.code());
                        }
                    }
                }
                self.pending = None;
                self.send(&ToClient::Response(result, id)).await
            }
            None => {
                let id = pending.request_id;
                self.pending = None;
                let error = MatchError::new(
                    ErrorCode::Internal,
                    "the matchmaker dropped the request; ask again",
                );
                self.send(&ToClient::Response(MatchResult::Failed(error), id))
                    .await
            }
        }
    }

    async fn send(&mut self, message: &ToClient) -> Result<(), End> {
        self.write(Message::Binary(encode(message).into())).await
    }

    async fn write(&mut self, message: Message) -> Result<(), End> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                debug!(
                    "/ws: a message to {} could not be written in time; closing",
                    self.ip
                );
                Err(End::Close(UNDELIVERED, "answer not delivered; ask again"))
            }
        }
    }
}

async fn next_update(pending: &mut Option<Pending>) -> Option<TicketUpdate> {
    match pending {
        Some(pending) => pending.updates.recv().await.map(|(_, update)| update),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_query_must_be_exactly_version_then_client_type() {
        let uri = |q: &str| format!("/ws?{q}").parse::<Uri>().unwrap();
        let v = CHANNEL_PROTOCOL_VERSION;
        assert_eq!(check_query(&uri(&format!("v={v}&t=0"))), Ok(false));
        assert_eq!(check_query(&uri(&format!("v={v}&t=1"))), Ok(true));
        for bad in [
            "v=bevygap-1&t=0".to_owned(),
            format!("t=0&v={v}"),
            format!("v={v}"),
            format!("v={v}&t=2"),
            format!("v={v}&t=0&x=1"),
        ] {
            let (status, _) = check_query(&uri(&bad)).unwrap_err();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
