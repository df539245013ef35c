//! The client listener: one accept loop for every path, with the limits an open port needs.
//!
//! Each TCP connection takes a slot of its address until it is upgraded to a websocket or
//! closed, so one address cannot hold more than [`Limits::max_connections_per_ip`] connections in
//! the HTTP phase (the websocket endpoints count their own). TLS handshakes must finish within
//! [`ListenerTimeouts::tls_handshake`]; request headers within [`ListenerTimeouts::headers`]
//! (a client trickling a byte a second is cut, as is one that sends nothing); a plain HTTP
//! connection lives at most [`ListenerTimeouts::http_lifetime`]. HTTP/1.1 only: websockets and the
//! status page need nothing more, and a small header buffer keeps a connection cheap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::limits::{ConnectionLimiter, Limits};

/// How long each phase of a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerTimeouts {
    /// From accepting the connection to the end of the TLS handshake.
    pub tls_handshake: Duration,
    /// For a request's headers (also between requests on a kept-alive connection).
    pub headers: Duration,
    /// Longest life of a connection that is not upgraded to a websocket.
    pub http_lifetime: Duration,
}

impl Default for ListenerTimeouts {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            headers: Duration::from_secs(10),
            http_lifetime: Duration::from_secs(60),
        }
    }
}

/// Largest request head (request line and headers) read before the request is refused.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `router` on `listener` until the runtime stops.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: Limits,
    timeouts: ListenerTimeouts,
) {
    let pending = ConnectionLimiter::new(limits.max_connections, limits.max_connections_per_ip);
    let tls = tls.map(TlsAcceptor::from);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: wait a moment.
                warn!("client listener: accept failed ({error}); retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match pending.acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                debug!("client listener: dropped a connection from {peer}: {refused}");
                continue;
            }
        };
        // Answers are small and latency matters: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let (router, tls) = (router.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_http(TokioIo::new(tcp), peer, router, timeouts).await,
                Some(acceptor) => {
                    match tokio::time::timeout(timeouts.tls_handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            serve_http(TokioIo::new(stream), peer, router, timeouts).await;
                        }
                        Ok(Err(error)) => debug!("client listener: TLS from {peer}: {error}"),
                        Err(_) => debug!("client listener: TLS handshake from {peer} too slow"),
                    }
                }
            }
        });
    }
}

async fn serve_http<I>(io: I, peer: SocketAddr, router: Router, timeouts: ListenerTimeouts)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router.map_request(
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        },
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.headers)
        .max_buf_size(MAX_HEAD_BYTES);
    let connection = builder.serve_connection(io, service).with_upgrades();
    match tokio::time::timeout(timeouts.http_lifetime, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!("client listener: connection from {peer}: {error}"),
        Err(_) => debug!("client listener: connection from {peer} outlived its HTTP lifetime"),
    }
}
