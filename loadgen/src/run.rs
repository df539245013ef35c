//! Running a bounded load: N workers, an optional target rate with ramp-up, a request cap and a
//! deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevygap_shared::protocol::GameRef;
use tokio::sync::mpsc;

use crate::report::{Outcome, Report};
use crate::seed_client::seed_request;
use crate::simplenet_client::SimplenetWorker;

/// Which client protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Protocol {
    /// The seed JSON websocket (`/matchmaker/ws`): one connection per request.
    Seed,
    /// The `bevy_simplenet` channel (`/ws`): one connection per worker.
    Simplenet,
}

/// A bounded load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadConfig {
    /// The endpoint URL, or several separated by commas (workers spread over them: several
    /// matchmakers of one game).
    pub url: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The game and version to ask for.
    pub game: String,
    /// The game version.
    pub version: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Target requests per second over all clients; `None` runs a closed loop.
    pub rate: Option<f64>,
    /// Time over which clients (and the rate) ramp up.
    pub ramp_up: Duration,
    /// At most this many requests.
    pub max_requests: usize,
    /// At most this long.
    pub max_duration: Duration,
    /// A request not answered within this counts as a timeout.
    pub request_timeout: Duration,
    /// Accept a non-loopback target (never in tests or scripts).
    pub allow_remote: bool,
}

fn is_loopback(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|host| match host {
            url::Host::Domain(d) => d == "localhost",
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        })
}

/// Runs the load and reports. Refuses non-loopback targets unless `allow_remote`.
pub async fn run_load(config: LoadConfig) -> anyhow::Result<Report> {
    let urls: Vec<String> = config
        .url
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    anyhow::ensure!(!urls.is_empty(), "--url is empty");
    if let Some(remote) = urls
        .iter()
        .find(|u| !config.allow_remote && !is_loopback(u))
    {
        anyhow::bail!(
            "{remote} is not a loopback address; pass --allow-remote to load a remote matchmaker"
        );
    }
    anyhow::ensure!(config.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(config.max_requests > 0, "--requests must be at least 1");
    let config = Arc::new(config);
    let issued = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(
        config.max_requests.min(1_000_000),
    )));
    let started = Instant::now();
    let deadline = started + config.max_duration;

    // Open loop: a pacer hands out permits at the target rate (ramping up); closed loop: none.
    let (permit_tx, permit_rx) = mpsc::channel::<()>(config.clients * 2);
    let permits = Arc::new(tokio::sync::Mutex::new(permit_rx));
    let pacer = config.rate.map(|rate| {
        let config = config.clone();
        tokio::spawn(async move {
            let mut sent = 0usize;
            loop {
                let now = Instant::now();
                if now >= deadline || sent >= config.max_requests {
                    return;
                }
                let t = now.duration_since(started).as_secs_f64();
                let ramp = config.ramp_up.as_secs_f64();
                // Requests due by now: the integral of a linear ramp, then the flat rate.
                let due = if ramp > 0.0 && t < ramp {
                    rate * t * t / (2.0 * ramp)
                } else {
                    rate * (t - ramp / 2.0)
                };
                while (sent as f64) < due && sent < config.max_requests {
                    if permit_tx.send(()).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        })
    });

    let mut workers = Vec::with_capacity(config.clients);
    for index in 0..config.clients {
        let config = config.clone();
        let issued = issued.clone();
        let outcomes = outcomes.clone();
        let permits = permits.clone();
        let paced = config.rate.is_some();
        let url = urls[index % urls.len()].clone();
        workers.push(tokio::spawn(async move {
            if !paced {
                let delay = config.ramp_up.mul_f64(index as f64 / config.clients as f64);
                tokio::time::sleep(delay).await;
            }
            let game = GameRef::new(config.game.clone(), config.version.clone());
            let request =
                serde_json::json!({ "game": config.game, "version": config.version }).to_string();
            let mut simplenet = None;
            loop {
                if paced && permits.lock().await.recv().await.is_none() {
                    return;
                }
                if Instant::now() >= deadline
                    || issued.fetch_add(1, Ordering::Relaxed) >= config.max_requests
                {
                    return;
                }
                let outcome = match config.protocol {
                    Protocol::Seed => seed_request(&url, &request, config.request_timeout).await,
                    Protocol::Simplenet => {
                        if simplenet.is_none() {
                            match SimplenetWorker::connect(
                                &url,
                                game.clone(),
                                config.request_timeout,
                            )
                            .await
                            {
                                Ok(worker) => simplenet = Some(worker),
                                Err(kind) => {
                                    outcomes
                                        .lock()
                                        .unwrap_or_else(PoisonError::into_inner)
                                        .push(Outcome::Failed(kind));
                                    continue;
                                }
                            }
                        }
                        match simplenet.as_mut() {
                            Some(worker) => worker.request(config.request_timeout).await,
                            None => Outcome::Failed("connect"),
                        }
                    }
                };
                if matches!(outcome, Outcome::Failed(_)) {
                    // A timed-out request may still be pending on that connection: start afresh.
                    simplenet = None;
                }
                outcomes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(outcome);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    if let Some(pacer) = pacer {
        pacer.abort();
    }
    let elapsed = started.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Report::from_outcomes(&outcomes, elapsed))
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_targets_are_accepted_by_default() {
        assert!(is_loopback("ws://127.0.0.1:3000/ws"));
        assert!(is_loopback("ws://[::1]:3000/ws"));
        assert!(is_loopback("ws://localhost:3000/ws"));
        assert!(!is_loopback("ws://192.168.1.10:3000/ws"));
        assert!(!is_loopback("wss://mm.example.com/ws"));
        assert!(!is_loopback("not a url"));
    }
}
