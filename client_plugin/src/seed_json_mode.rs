//! The optional JSON-endpoint mode: the seed's `/matchmaker/ws` protocol, for matchmakers that
//! only speak it. Native only; browser builds use the simplenet channel.

use std::sync::mpsc;
use std::time::Duration;

use bevy::prelude::*;
use bevygap_shared::protocol::channel::{MatchedSessions, SessionInfo};
use bevygap_shared::protocol::seed_json::{SeedRequest, SeedResponse};
use bevygap_shared::schema::{CertDigest, Transport};

/// What the JSON conversation reports to the schedule.
#[derive(Debug)]
pub enum SeedEvent {
    /// Progress text.
    Progress(String),
    /// The session.
    Ready(SessionInfo),
    /// A queue's match.
    Matched(MatchedSessions),
    /// The conversation failed.
    Failed(String),
}

/// An open JSON conversation.
#[derive(Resource)]
pub struct SeedConversation {
    /// Events from the websocket thread.
    pub events: std::sync::Mutex<mpsc::Receiver<SeedEvent>>,
    /// When it started (real time).
    pub started: Duration,
}

/// Turns `SessionReady` into a session.
fn session_from(
    token: &str,
    ip: &str,
    port: u16,
    cert_digest: &str,
) -> Result<SessionInfo, String> {
    use base64::Engine;
    let connect_token = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|e| format!("bad token: {e}"))?;
    let ip = ip.parse().map_err(|e| format!("bad ip {ip}: {e}"))?;
    let (transport, cert_digest) = if cert_digest.is_empty() {
        (Transport::Udp, None)
    } else {
        let digest: CertDigest = cert_digest.parse().map_err(|e| format!("{e}"))?;
        (Transport::WebTransport, Some(digest))
    };
    Ok(SessionInfo {
        ticket_id: String::new(),
        connect_token,
        ip,
        port,
        transport,
        cert_digest,
    })
}

/// Starts the conversation on its own thread.
pub fn start(url: String, request: SeedRequest, started: Duration) -> SeedConversation {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = tx.send(SeedEvent::Failed(error.to_string()));
                return;
            }
        };
        let outcome = runtime.block_on(converse(&url, &request, &tx));
        if let Err(reason) = outcome {
            let _ = tx.send(SeedEvent::Failed(reason));
        }
    });
    SeedConversation {
        events: std::sync::Mutex::new(rx),
        started,
    }
}

async fn converse(
    url: &str,
    request: &SeedRequest,
    tx: &mpsc::Sender<SeedEvent>,
) -> Result<(), String> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("cannot reach the matchmaker at {url}: {e}"))?;
    let request = serde_json::to_string(request).map_err(|e| e.to_string())?;
    ws.send(Message::Text(request.into()))
        .await
        .map_err(|e| format!("the matchmaker connection failed: {e}"))?;
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| format!("the matchmaker connection failed: {e}"))?;
        let Message::Text(text) = message else {
            continue;
        };
        match SeedResponse::parse(text.as_str()).map_err(|e| e.to_string())? {
            SeedResponse::ProgressReport(text) => {
                let _ = tx.send(SeedEvent::Progress(text));
            }
            SeedResponse::SessionReady {
                token,
                ip,
                port,
                cert_digest,
            } => {
                let session = session_from(&token, &ip, port, &cert_digest)?;
                let _ = tx.send(SeedEvent::Ready(session));
                return Ok(());
            }
            SeedResponse::MatchReady {
                team,
                teams,
                sessions,
            } => {
                let sessions = sessions
                    .iter()
                    .map(|s| session_from(&s.token, &s.ip, s.port, &s.cert_digest))
                    .collect::<Result<Vec<_>, _>>()?;
                let _ = tx.send(SeedEvent::Matched(MatchedSessions {
                    team,
                    teams,
                    sessions,
                }));
                return Ok(());
            }
            SeedResponse::Error(code, text) => return Err(format!("{code}: {text}")),
            SeedResponse::Acknowledged | SeedResponse::SessionRequestAccepted(_) => {}
        }
    }
    Err("the matchmaker closed the connection without a result".into())
}

#[cfg(test)]
mod tests {
    use super::session_from;

    #[test]
    fn session_ready_fields_become_a_session() {
        let udp = session_from("TkVUQ09ERQ==", "127.0.0.1", 6420, "").unwrap();
        assert_eq!(udp.connect_token, b"NETCODE");
        assert!(udp.cert_digest.is_none());
        let wt = session_from("TkVUQ09ERQ==", "::1", 6420, &"ab".repeat(32)).unwrap();
        assert!(wt.cert_digest.is_some());
        assert!(session_from("%%%", "127.0.0.1", 1, "").is_err());
        assert!(session_from("TkVU", "nope", 1, "").is_err());
    }
}
