//! Prometheus metrics on the operator port: the request counts and latencies the endpoints saw,
//! valid for `promtool check metrics`, scraped by a real Prometheus server and read back through
//! its query API.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_matchmaker::metrics::MetricsConfig;
use bevygap_shared::protocol::seed_json::SeedResponse;
use bevygap_test_support::{free_tcp_port, wait_until_async};
use support::app_harness::*;
use support::core_harness::{GAME, VERSION, lease};

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

async fn scrape(address: SocketAddr) -> String {
    reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample line starting with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_timed_and_read_back_by_prometheus() {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    let h = AppHarness::start_adjusted(Limits::default(), FleetChoice::Static, |config| {
        config.metrics = Some(MetricsConfig { listen: metrics });
        config.placement.queues = bevygap_matchmaker::queues::QueueProfiles::from_toml(
            "[[queue]]\nname = \"duel\"\nteams = 2\nteam_size = { min = 1, max = 1 }\nmax_wait_secs = 60\n",
        )
        .unwrap();
    })
    .await;
    h.put_lease(&lease("dep-a", 4, 6420)).await;
    let ask = |game: &str| format!(r#"{{"game":"{game}","version":"{VERSION}"}}"#);
    // A token, once the matchmaker has seen the lease.
    wait_until_async("a session", WAIT, || async {
        let (replies, _) = seed_conversation(&h.mm().seed_url(), &ask(GAME)).await;
        matches!(replies.last(), Some(SeedResponse::SessionReady { .. })).then_some(())
    })
    .await;
    let (replies, _) = seed_conversation(&h.mm().seed_url(), &ask("tetris")).await;
    assert!(matches!(replies.last(), Some(SeedResponse::Error(404, _))));

    // The endpoint's counts, once sampled.
    let text = wait_until_async("sampled gauges", WAIT, || async {
        let text = scrape(metrics).await;
        (sample(&text, r#"bevygap_seats{fleet="static",state="used"}"#) == Some(1.0))
            .then_some(text)
    })
    .await;
    assert_eq!(
        sample(
            &text,
            r#"bevygap_requests_failed_total{endpoint="/matchmaker/ws",code="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"bevygap_request_to_token_seconds_count{endpoint="/matchmaker/ws"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"bevygap_deployments{state="ready"}"#),
        Some(1.0)
    );
    assert!(
        sample(&text, r#"bevygap_seat_writes_total{outcome="taken"}"#).is_some_and(|n| n >= 1.0)
    );
    assert!(
        sample(&text, "bevygap_kv_watch_lag_seconds").is_some_and(|s| s >= 0.0),
        "{text}"
    );
    // Each queue's series, from the start.
    assert_eq!(
        sample(&text, r#"bevygap_queue_waiting_players{queue="duel"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"bevygap_queue_matches_total{queue="duel"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"bevygap_queue_expired_total{queue="duel"}"#),
        Some(0.0)
    );

    if !found("promtool") {
        println!("skipped: promtool not found (ci/setup.sh installs Debian's prometheus package)");
    } else {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .output_with_stdin(&text);
        assert!(check.0.success(), "promtool: {}", check.1);
        check.1.clear();
    }

    if !found("prometheus") {
        println!(
            "skipped: prometheus not found (ci/setup.sh installs Debian's prometheus package)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bevygap\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().unwrap()));
    let mut prometheus = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = format!(
        "http://{web}/api/v1/query?query=bevygap_requests_failed_total%7Bcode%3D%22404%22%7D"
    );
    let value = wait_until_async("Prometheus scraped the matchmaker", WAIT, || {
        let query = query.clone();
        async move {
            let answer: serde_json::Value = reqwest::get(&query).await.ok()?.json().await.ok()?;
            let value = answer["data"]["result"][0]["value"][1].as_str()?.to_owned();
            Some(value)
        }
    })
    .await;
    assert_eq!(value, "1");
    let _ = prometheus.0.kill();
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command with `input` on its stdin; returns its status and what it printed.
trait WithStdin {
    fn output_with_stdin(&mut self, input: &str) -> (std::process::ExitStatus, String);
}

impl WithStdin for Command {
    fn output_with_stdin(&mut self, input: &str) -> (std::process::ExitStatus, String) {
        use std::io::Write;
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}
