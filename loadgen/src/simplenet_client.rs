//! Requests over the simplenet channel: one connection per worker, one request at a time.

use std::time::{Duration, Instant};

use bevy_simplenet::{AuthRequest, Client, ClientConfig, ClientEvent, ClientFactory, ClientReport};
use bevygap_shared::protocol::GameRef;
use bevygap_shared::protocol::channel::{
    CHANNEL_PROTOCOL_VERSION, ClientHello, MatchRequest, MatchResult, MatchmakerChannel,
};

use crate::report::Outcome;

/// How often a simplenet client is polled while waiting.
const POLL: Duration = Duration::from_micros(200);

/// A connected simplenet client.
pub struct SimplenetWorker {
    client: Client<MatchmakerChannel>,
}

impl SimplenetWorker {
    /// Connects and waits for the connection, within `timeout`.
    pub async fn connect(
        url: &str,
        game: GameRef,
        timeout: Duration,
    ) -> Result<Self, &'static str> {
        let url = url.parse().map_err(|_| "url")?;
        let mut client = ClientFactory::<MatchmakerChannel>::new(CHANNEL_PROTOCOL_VERSION)
            .new_client(
                enfync::builtin::Handle::default(),
                url,
                AuthRequest::None {
                    client_id: rand::random::<u128>(),
                },
                ClientConfig {
                    reconnect_on_disconnect: false,
                    reconnect_on_server_close: false,
                    ..ClientConfig::default()
                },
                ClientHello {
                    game,
                    client_build: "bevygap_loadgen".into(),
                },
            );
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(event) = client.next() {
                match event {
                    ClientEvent::Report(ClientReport::Connected) => return Ok(Self { client }),
                    ClientEvent::Report(_) => return Err("connect"),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                return Err("connect");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends one request and waits for its result.
    pub async fn request(&mut self, timeout: Duration) -> Outcome {
        let started = Instant::now();
        let _ = self.client.request(MatchRequest::default());
        loop {
            while let Some(event) = self.client.next() {
                match event {
                    ClientEvent::Response(MatchResult::Ready(_), _) => {
                        return Outcome::Ready(started.elapsed());
                    }
                    ClientEvent::Response(MatchResult::Failed(error), _) => {
                        return Outcome::Refused(error.code.code());
                    }
                    ClientEvent::Report(_) => return Outcome::Failed("closed"),
                    ClientEvent::Reject(_)
                    | ClientEvent::SendFailed(_)
                    | ClientEvent::ResponseLost(_) => {
                        return Outcome::Failed("dropped");
                    }
                    _ => {}
                }
            }
            if started.elapsed() > timeout {
                return Outcome::Failed("timeout");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
