//! Connecting to NATS with reconnects that never give up, and an observable connection state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, jetstream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::settings::NatsSettings;
use super::tls::client_config_for_ca;
use crate::error::NatsError;

/// Where the connection stands, for readiness reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connected; `reconnects` counts how often the connection was re-established since start.
    Connected {
        /// Reconnections since the first connect.
        reconnects: u64,
    },
    /// The connection dropped; the client is retrying with backoff.
    Reconnecting,
    /// The client was closed and will not reconnect.
    Closed,
}

impl ConnectionState {
    /// Whether requests can be served now.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }
}

/// A live NATS connection with its JetStream context and state.
#[derive(Debug, Clone)]
pub struct NatsConnection {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    state: watch::Receiver<ConnectionState>,
}

impl NatsConnection {
    /// The core NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context (KV buckets live here).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }
}

/// The delay before reconnect attempt `attempt`: exponential from 50 ms to 5 s, with jitter so a
/// fleet of servers does not reconnect in lock-step.
pub(crate) fn reconnect_delay(attempt: usize) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = u64::from(nanos) % (base / 4 + 1);
    Duration::from_millis(base + jitter)
}

/// Connects to NATS. The first attempt must succeed (so bad settings fail at start-up with a clear
/// error); after that the client reconnects forever with backoff.
pub async fn connect(
    settings: &NatsSettings,
    client_name: &str,
) -> Result<NatsConnection, NatsError> {
    settings.validate()?;
    let address = settings.address();
    let mut options = ConnectOptions::new()
        .name(client_name)
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .connection_timeout(settings.connect_timeout());
    if let Some(prefix) = &settings.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }

    if let Some(creds) = &settings.creds {
        options =
            options
                .credentials_file(creds)
                .await
                .map_err(|e| NatsError::InvalidCredentials {
                    path: creds.display().to_string(),
                    reason: e.to_string(),
                })?;
    } else if let Some(user) = &settings.user {
        let password = settings
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        options = options.user_and_password(user.clone(), password);
    }

    if settings.insecure {
        info!("NATS: connecting to `{address}` without TLS (NATS_INSECURE)");
    } else {
        options = options.require_tls(true);
        let ca = match (&settings.ca, &settings.ca_contents) {
            (Some(path), _) => {
                let name = path.display().to_string();
                let pem = tokio::fs::read(path)
                    .await
                    .map_err(|e| NatsError::InvalidCa {
                        source_name: name.clone(),
                        reason: e.to_string(),
                    })?;
                Some(client_config_for_ca(&pem, &name)?)
            }
            (None, Some(text)) => Some(client_config_for_ca(
                text.expose().as_bytes(),
                "NATS_CA_CONTENTS",
            )?),
            (None, None) => None,
        };
        if let Some(config) = ca {
            options = options.tls_client_config(config);
        }
        info!("NATS: connecting to `{address}` over TLS");
    }

    let (state_tx, state_rx) = watch::channel(ConnectionState::Reconnecting);
    let events_tx = state_tx.clone();
    let connects = Arc::new(AtomicU64::new(0));
    let host = address.clone();
    options = options.event_callback(move |event| {
        let tx = events_tx.clone();
        let connects = connects.clone();
        let host = host.clone();
        async move {
            match event {
                Event::Connected => {
                    let reconnects = connects.fetch_add(1, Ordering::Relaxed);
                    if reconnects > 0 {
                        info!("NATS: reconnected to `{host}` (reconnect {reconnects})");
                    }
                    tx.send_replace(ConnectionState::Connected { reconnects });
                }
                Event::Disconnected => {
                    warn!("NATS: disconnected from `{host}`, reconnecting with backoff");
                    tx.send_replace(ConnectionState::Reconnecting);
                }
                Event::Closed => {
                    tx.send_replace(ConnectionState::Closed);
                }
                other => debug!("NATS: event from `{host}`: {other}"),
            }
        }
    });

    let client = options
        .connect(address.as_str())
        .await
        .map_err(|err| classify_connect_error(&address, &err))?;
    // The callback may not have run yet for the first connection.
    state_tx.send_if_modified(|state| {
        let first = *state == ConnectionState::Reconnecting;
        if first {
            *state = ConnectionState::Connected { reconnects: 0 };
        }
        first
    });
    info!("NATS: connected to `{address}` as `{client_name}`");
    let jetstream = jetstream::new(client.clone());
    Ok(NatsConnection {
        client,
        jetstream,
        state: state_rx,
    })
}

fn classify_connect_error(host: &str, err: &async_nats::ConnectError) -> NatsError {
    let host = host.to_owned();
    let detail = error_chain(err);
    match err.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            NatsError::AuthenticationFailed { host, detail }
        }
        ConnectErrorKind::Tls => NatsError::Tls { host, detail },
        ConnectErrorKind::Io if detail.contains("certificate") || detail.contains("tls") => {
            NatsError::Tls { host, detail }
        }
        ConnectErrorKind::ServerParse => NatsError::InvalidSettings(format!(
            "NATS_HOST `{host}` is not a valid address: {detail}"
        )),
        _ => NatsError::Unreachable { host, detail },
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::reconnect_delay;
    use std::time::Duration;

    #[test]
    fn reconnect_delay_grows_and_is_capped() {
        assert!(reconnect_delay(0) >= Duration::from_millis(50));
        assert!(reconnect_delay(0) < Duration::from_millis(100));
        assert!(reconnect_delay(3) >= Duration::from_millis(400));
        for attempt in [10, 100, usize::MAX] {
            let d = reconnect_delay(attempt);
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_millis(6_250),
                "{d:?}"
            );
        }
    }
}
