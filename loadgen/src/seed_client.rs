//! One request over the seed JSON endpoint.

use std::time::{Duration, Instant};

use bevygap_shared::protocol::seed_json::SeedResponse;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::report::Outcome;

/// Opens a websocket, sends the request, waits for the final message.
pub async fn seed_request(url: &str, request: &str, timeout: Duration) -> Outcome {
    let attempt = async {
        let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
            Ok(ok) => ok,
            Err(_) => return Outcome::Failed("connect"),
        };
        let started = Instant::now();
        if ws.send(Message::Text(request.into())).await.is_err() {
            return Outcome::Failed("send");
        }
        while let Some(message) = ws.next().await {
            let Ok(message) = message else {
                return Outcome::Failed("closed");
            };
            let Message::Text(text) = message else {
                continue;
            };
            match SeedResponse::parse(text.as_str()) {
                Ok(SeedResponse::SessionReady { .. }) => {
                    let latency = started.elapsed();
                    let _ = ws.close(None).await;
                    return Outcome::Ready(latency);
                }
                Ok(SeedResponse::Error(code, _)) => return Outcome::Refused(code),
                Ok(_) => {}
                Err(_) => return Outcome::Failed("malformed"),
            }
        }
        Outcome::Failed("closed")
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Outcome::Failed("timeout"))
}
