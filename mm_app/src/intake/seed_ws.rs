//! The seed-compatible endpoint: plain JSON over a websocket at `/matchmaker/ws`.
//!
//! One request per connection: the client sends `{"game","version"}`, receives `"Acknowledged"`,
//! `{"SessionRequestAccepted":id}`, progress reports, and finally `SessionReady` or `Error`, after
//! which the server closes normally. Closing early cancels the ticket.

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bevygap_shared::ProtocolError;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::protocol::channel::MatchResult;
use bevygap_shared::protocol::seed_json::{SeedResponse, parse_request};
use tokio::sync::mpsc;
use tracing::debug;

use super::Endpoint;
use super::limits::{ConnectionSlot, RateLimiter, client_ip};
use crate::messages::{TicketCancelled, TicketRequested};
use crate::metrics::{Metrics, SEED_JSON};
use crate::ticket::{TicketId, TicketResponder, TicketUpdate};

/// Hard cap on any websocket frame; bigger frames drop the connection. Requests over
/// [`Limits::max_message_bytes`] but under this get a typed 413 error.
const HARD_FRAME_CAP: usize = 64 * 1024;

/// The axum handler for `GET /matchmaker/ws`.
pub async fn seed_ws_handler(
    State(endpoint): State<Endpoint>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let ip = client_ip(peer, &headers, &endpoint.trusted_proxies);
    let slot = match endpoint.limiter.acquire(ip) {
        Ok(slot) => slot,
        Err(refused) => {
            debug!("seed endpoint: refused {ip}: {refused}");
            if let Some(metrics) = &endpoint.metrics {
                metrics.connection_refused(SEED_JSON);
            }
            return (StatusCode::TOO_MANY_REQUESTS, refused.to_string()).into_response();
        }
    };
    upgrade
        // Requests and answers are a few hundred bytes: small buffers keep a socket cheap.
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(HARD_FRAME_CAP)
        .max_frame_size(HARD_FRAME_CAP)
        .on_upgrade(move |socket| serve(socket, endpoint, ip, slot))
}

async fn send(socket: &mut WebSocket, message: &SeedResponse) -> bool {
    socket
        .send(Message::Text(message.to_json().into()))
        .await
        .is_ok()
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await;
}

async fn fail(mut socket: WebSocket, metrics: Option<&Metrics>, code: ErrorCode, text: String) {
    if let Some(metrics) = metrics {
        metrics.request_failed(SEED_JSON, code.code());
    }
    send(&mut socket, &SeedResponse::error(code, text)).await;
    close(socket, close_code::NORMAL, "").await;
}

fn error_code(error: &ProtocolError) -> ErrorCode {
    match error {
        ProtocolError::TooLarge { .. } => ErrorCode::TooLarge,
        _ => ErrorCode::BadRequest,
    }
}

async fn serve(
    mut socket: WebSocket,
    endpoint: Endpoint,
    ip: std::net::IpAddr,
    _slot: ConnectionSlot,
) {
    let mut rate = RateLimiter::new(endpoint.limits.messages_per_second);
    // 1. The request, within the request timeout.
    let first = tokio::time::timeout(endpoint.limits.request_timeout, socket.recv()).await;
    let text = match first {
        Err(_) => {
            return fail(
                socket,
                endpoint.metrics.as_ref(),
                ErrorCode::Timeout,
                "no request received in time".into(),
            )
            .await;
        }
        Ok(None) | Ok(Some(Err(_))) => return,
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Ok(Message::Binary(_)))) => {
            return fail(
                socket,
                endpoint.metrics.as_ref(),
                ErrorCode::BadRequest,
                "send the request as a JSON text frame".into(),
            )
            .await;
        }
        Ok(Some(Ok(_))) => return close(socket, close_code::NORMAL, "").await,
    };
    let request = match parse_request(text.as_str(), endpoint.limits.max_message_bytes) {
        Ok(request) => request,
        Err(error) => {
            debug!("seed endpoint: bad request from {ip}: {error}");
            return fail(
                socket,
                endpoint.metrics.as_ref(),
                error_code(&error),
                error.to_string(),
            )
            .await;
        }
    };
    if let Some(players) = &endpoint.players
        && let Err(refused) = players.verify(request.player_token.as_deref())
    {
        debug!("seed endpoint: {ip} refused: {refused}");
        return fail(
            socket,
            endpoint.metrics.as_ref(),
            refused.code(),
            refused.to_string(),
        )
        .await;
    }

    // 2. The ticket.
    let ticket_id = TicketId::generate();
    let requested_at = tokio::time::Instant::now();
    if !send(&mut socket, &SeedResponse::Acknowledged).await
        || !send(
            &mut socket,
            &SeedResponse::SessionRequestAccepted(ticket_id.0.clone()),
        )
        .await
    {
        return;
    }
    let (tx, mut updates) = mpsc::unbounded_channel();
    let accepted = endpoint
        .requests
        .send(TicketRequested {
            ticket_id: ticket_id.clone(),
            queue: request.queue_request(),
            game: request.game,
            client_ip: Some(ip),
            region_pings: Vec::new(),
            responder: TicketResponder(tx),
        })
        .await;
    if !accepted {
        return fail(
            socket,
            endpoint.metrics.as_ref(),
            ErrorCode::Internal,
            "the matchmaker is shutting down".into(),
        )
        .await;
    }

    // 3. Progress until the result; the client closing cancels.
    let deadline = tokio::time::sleep(endpoint.ticket_timeout + std::time::Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Some((_, TicketUpdate::Status(status))) => {
                    if !send(&mut socket, &SeedResponse::ProgressReport(status.text)).await {
                        break;
                    }
                }
                Some((_, TicketUpdate::Result(result))) => {
                    if let Some(metrics) = &endpoint.metrics {
                        match &result {
                            MatchResult::Ready(_) | MatchResult::Matched(_) => metrics.token_issued(SEED_JSON, requested_at.elapsed()),
                            MatchResult::Failed(error) => metrics.request_failed(SEED_JSON, error.code.code()),
                        }
                    }
                    let message = match &result {
                        MatchResult::Ready(session) => SeedResponse::ready(session),
                        MatchResult::Matched(matched) => SeedResponse::matched(matched),
                        MatchResult::Failed(error) => SeedResponse::error(error.code, error.message.clone()),
                    };
                    send(&mut socket, &message).await;
                    let going_away = matches!(
                        &result,
                        MatchResult::Failed(error) if error.code == ErrorCode::ShuttingDown
                    );
                    return if going_away {
                        close(socket, close_code::AWAY, "matchmaker shutting down").await
                    } else {
                        close(socket, close_code::NORMAL, "").await
                    };
                }
                None => return fail(socket, endpoint.metrics.as_ref(), ErrorCode::Internal, "the matchmaker dropped the request".into()).await,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {
                    if !rate.allow() {
                        debug!("seed endpoint: {ip} is over its message rate; closing");
                        endpoint.cancels.send(TicketCancelled { ticket_id: ticket_id.clone() }).await;
                        return close(socket, close_code::POLICY, "message rate exceeded").await;
                    }
                }
            },
            () = &mut deadline => {
                break;
            }
        }
    }
    endpoint.cancels.send(TicketCancelled { ticket_id }).await;
}
