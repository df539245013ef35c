//! Several matchmakers, one game, on a three-node JetStream cluster (R3 buckets): real example
//! game servers, bots over real netcode, and under load one matchmaker is killed with SIGKILL and
//! one NATS node dies. Every bot gets an answer (a session from a survivor, or an error it can
//! retry), no server admits more players than its seats, and the seat ledger never holds more.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bevygap_example_game::{GAME, PROTOCOL_ID, VERSION};
use bevygap_matchmaker::kv_bridge::KvStores;
use bevygap_shared::names::{AppNames, parse_seat_key};
use bevygap_shared::nats::{NatsSettings, WatchEvent, connect, spawn_watch};
use bevygap_test_support::{NatsCluster, free_tcp_port, json_rpc, wait_until, wait_until_async};

const KEY: &str = "0505050505050505050505050505050505050505050505050505050505050505";
const SERVERS: usize = 2;
const SEATS: u32 = 2;
const BOTS: usize = 8;
const WAIT: Duration = Duration::from_secs(60);

/// A child process killed (SIGKILL) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A binary of the workspace, beside the example server this package builds.
fn workspace_binary(name: &str) -> PathBuf {
    bevygap_test_support::workspace_binary(env!("CARGO_BIN_EXE_example_server"), name)
}

fn game_server(nats: &str, id: &str, log: &Path) -> Process {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Process(
        Command::new(env!("CARGO_BIN_EXE_example_server"))
            .env("NATS_HOST", nats)
            .env("NATS_INSECURE", "true")
            .env("LIGHTYEAR_PRIVATE_KEY", KEY)
            .env("BEVYGAP_DEPLOYMENT_ID", id)
            .env("BEVYGAP_PUBLIC_IP", "127.0.0.1")
            .env("BEVYGAP_PORT", port.to_string())
            .env("BEVYGAP_APP_NAME", GAME)
            .env("BEVYGAP_APP_VERSION", VERSION)
            .env("BEVYGAP_CAPACITY", SEATS.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn matchmaker(nats: &str, port: u16, remote_port: u16) -> Process {
    Process(
        Command::new(workspace_binary("bevygap_matchmaker"))
            .args(["--app-name", GAME, "--app-version", VERSION])
            .args(["--lightyear-protocol-id", &PROTOCOL_ID.to_string()])
            .args(["--fleet", "static", "--kv-replicas", "3"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--remote-port", &remote_port.to_string()])
            .args(["--metrics-port", "0"])
            .args(["--nats-host", nats, "--nats-insecure"])
            .env("LIGHTYEAR_PRIVATE_KEY", KEY)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The most players a server's log says it held at once (`… (N players)` on each connect).
fn most_players(log: &Path) -> u32 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("connected on seat"))
        .filter_map(|l| {
            let (_, tail) = l.rsplit_once('(')?;
            tail.split_whitespace().next()?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// The last lines of each server's log, to read when the test fails.
fn log_tails(servers: &[(Process, PathBuf)]) -> String {
    servers
        .iter()
        .map(|(_, log)| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            format!("--- {}\n{tail}", log.display())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn three_matchmakers_on_a_three_node_cluster_survive_losing_one_of_each() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let names = AppNames::new(GAME).unwrap();
    // The buckets with three replicas, once the cluster has elected its leaders.
    let (nats, stores) = runtime.block_on(async {
        let nats = connect(&NatsSettings::insecure(cluster.address(1)), "test")
            .await
            .unwrap();
        let stores = wait_until_async("R3 buckets on the cluster", WAIT, || async {
            KvStores::open(&nats, &names, 3).await.ok()
        })
        .await;
        (nats, stores)
    });

    let logs = tempfile::tempdir().unwrap();
    let servers: Vec<(Process, PathBuf)> = (0..SERVERS)
        .map(|i| {
            let log = logs.path().join(format!("server-{i}.log"));
            (
                game_server(&cluster.address(1), &format!("static-{i}"), &log),
                log,
            )
        })
        .collect();
    let matchmakers: Vec<(u16, u16)> = (0..3)
        .map(|_| (free_tcp_port().unwrap(), free_tcp_port().unwrap()))
        .collect();
    let mut processes: Vec<Option<Process>> = matchmakers
        .iter()
        .enumerate()
        .map(|(i, (port, remote))| Some(matchmaker(&cluster.address(i), *port, *remote)))
        .collect();
    // Each matchmaker has listed the ledger and sees both servers.
    for (_, remote) in &matchmakers {
        runtime.block_on(wait_until_async("a matchmaker ready", WAIT, || async {
            let summary = json_rpc(*remote, "bevygap/summary", serde_json::Value::Null).await?;
            let result = &summary["result"];
            (result["ledger"]["ready"] == true
                && result["deployments"].as_array()?.len() == SERVERS)
                .then_some(())
        }));
    }

    // The seat ledger, watched: never more seats held on a server than it has.
    let most_held = {
        let _runtime = runtime.enter();
        let mut watch = spawn_watch(&nats, stores.seats.store().clone(), ">", 1024);
        runtime.spawn(async move {
            let mut held: HashMap<String, HashSet<u32>> = HashMap::new();
            let mut most = 0usize;
            while let Some(event) = watch.events.recv().await {
                match event {
                    WatchEvent::Put { key, .. } => {
                        if let Some((deployment, seat)) = parse_seat_key(&key) {
                            let seats = held.entry(deployment.to_string()).or_default();
                            seats.insert(seat);
                            most = most.max(seats.len());
                        }
                    }
                    WatchEvent::Removed { key, .. } => {
                        if let Some((deployment, seat)) = parse_seat_key(&key) {
                            held.entry(deployment.to_string())
                                .or_default()
                                .remove(&seat);
                        }
                    }
                    _ => {}
                }
                if most > SEATS as usize {
                    return most;
                }
            }
            most
        })
    };

    let bots: Vec<Child> = (0..BOTS)
        .map(|i| {
            let (port, _) = matchmakers[i % 3];
            Command::new(workspace_binary("example_client"))
                .args(["--matchmaker-url", &format!("ws://127.0.0.1:{port}/ws")])
                .args(["--play-secs", "2", "--timeout-secs", "30"])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Under load: one matchmaker dies without a word, and so does one NATS node.
    processes[0] = None;
    cluster.nodes[2].stop();

    let outcomes: Vec<(bool, String)> = bots
        .into_iter()
        .map(|mut bot| {
            wait_until("every bot to finish", WAIT * 2, || {
                bot.try_wait().ok().flatten()
            });
            let output = bot.wait_with_output().unwrap();
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        })
        .collect();
    let played = outcomes.iter().filter(|(ok, _)| *ok).count();
    eprintln!("bots: {played} of {BOTS} played; {outcomes:?}");
    assert!(
        played >= 1,
        "survivors still place players: {outcomes:?}\n{}",
        log_tails(&servers)
    );
    for (ok, reason) in &outcomes {
        assert!(
            *ok || !reason.trim().is_empty(),
            "a bot that got no session says why: {outcomes:?}"
        );
    }
    for (_, log) in &servers {
        let most = most_players(log);
        assert!(
            most <= SEATS,
            "{} admitted {most} players on {SEATS} seats",
            log.display()
        );
    }
    // The watch stops early only if a server was ever held over its seats.
    if most_held.is_finished() {
        let most = runtime.block_on(most_held).unwrap();
        assert!(
            most <= SEATS as usize,
            "the ledger held {most} seats on one server"
        );
    }
    drop(processes);
    drop(servers);
}
