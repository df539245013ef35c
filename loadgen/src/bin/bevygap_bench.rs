//! Bevygap benchmarks: each section prints its figures and the target it is measured against.
//!
//! `bevygap_bench --profile short` (default) or `--profile long`. Run through `bash ci/bench.sh`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevygap_loadgen::env::{GAME, VERSION, WarmFleet};
use bevygap_loadgen::noise_floor::NoiseFloor;
use bevygap_loadgen::report::Percentiles;
use bevygap_loadgen::{LoadConfig, Protocol, run_load};
use bevygap_matchmaker::messages::TicketRequested;
use bevygap_matchmaker::ticket::{TicketId, TicketResponder};
use bevygap_matchmaker::tokens::TokenMinter;
use bevygap_matchmaker::{PrivateKey, TokenConfig};
use bevygap_shared::names::{KeyToken, seat_key};
use bevygap_shared::nats::BucketSpec;
use bevygap_shared::protocol::GameRef;
use bevygap_shared::schema::{SeatHolder, SeatRecord};
use bevygap_shared::token_data::TokenUserData;
use clap::Parser;

/// Runs the benchmarks.
#[derive(Debug, Parser)]
#[command(name = "bevygap_bench")]
struct Args {
    /// `short` (a minute or two) or `long`.
    #[arg(long, default_value = "short")]
    profile: String,
    /// Only run sections whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Write all figures as JSON here.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

struct Profile {
    /// Runs of the noise floor's fixed job.
    floor_samples: usize,
    warm_secs: f64,
    warm_rate: f64,
    tokens: usize,
    tickets: usize,
    frames: usize,
    seat_samples: usize,
    idle_connections: usize,
    /// Seed JSON requests sent all at once, each on its own connection.
    burst_requests: usize,
    cold_samples: usize,
    /// Simulated seconds of each queue row.
    queue_secs: f64,
}

fn section(name: &str) {
    println!("\n== {name} ==");
}

/// The machine's noise floor, measured first.
static FLOOR: OnceLock<NoiseFloor> = OnceLock::new();

/// `p99_ms` against the floor's p99, for printing.
fn vs_floor(p99_ms: f64) -> String {
    match FLOOR.get() {
        Some(floor) => format!("{:.1}× the floor's p99", floor.multiple(p99_ms)),
        None => "floor not measured".into(),
    }
}

/// Records `p99_ms` and its multiple of the floor's p99 under `key`.
fn record_p99(out: &mut serde_json::Map<String, serde_json::Value>, key: &str, p99_ms: f64) {
    let multiple = FLOOR.get().map(|f| f.multiple(p99_ms));
    out.insert(
        format!("{key}_p99_vs_floor"),
        serde_json::json!({ "p99_ms": p99_ms, "floor_multiple": multiple }),
    );
}

fn noise_floor(profile: &Profile, out: &mut serde_json::Map<String, serde_json::Value>) {
    section("noise floor: a fixed ~1 ms CPU job, timed");
    let floor = NoiseFloor::measure(profile.floor_samples);
    println!(
        "{} runs: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; CPU steal {:.2} %",
        floor.samples, floor.p50_ms, floor.p99_ms, floor.max_ms, floor.steal_percent
    );
    out.insert(
        "floor".into(),
        serde_json::to_value(floor).unwrap_or_default(),
    );
    let _ = FLOOR.set(floor);
}

fn verdict(value: f64, target: f64, lower_is_better: bool) -> String {
    let met = if lower_is_better {
        value <= target
    } else {
        value >= target
    };
    if met {
        "meets the target".into()
    } else if lower_is_better {
        format!(
            "misses the target by {:.0}%",
            (value / target - 1.0) * 100.0
        )
    } else {
        format!(
            "misses the target by {:.0}%",
            (1.0 - value / target) * 100.0
        )
    }
}

fn token_minting(profile: &Profile, out: &mut serde_json::Map<String, serde_json::Value>) {
    section("token minting");
    let minter = TokenMinter(TokenConfig {
        protocol_id: 1,
        private_key: PrivateKey::from_bytes([7; 32]),
        expire_seconds: 15,
        timeout_seconds: 5,
    });
    let data = TokenUserData {
        deployment_id: "dep-1".into(),
        reservation_id: "r-0123456789abcdef".into(),
        expires_at_ms: 0,
        team: None,
    };
    let started = Instant::now();
    for i in 0..profile.tokens {
        let token = minter.mint(([127, 0, 0, 1], 6420).into(), i as u64 + 1, &data);
        assert!(token.is_ok());
    }
    let elapsed = started.elapsed();
    let per_sec = profile.tokens as f64 / elapsed.as_secs_f64();
    let each = elapsed.as_secs_f64() * 1e6 / profile.tokens as f64;
    println!(
        "{} tokens in {elapsed:.2?}: {per_sec:.0} tokens/s, {each:.1} µs each (one core)",
        profile.tokens
    );
    out.insert("token_mint_per_sec".into(), per_sec.into());
    out.insert("token_mint_us".into(), each.into());
}

fn frame_time(
    profile: &Profile,
    single_threaded: bool,
    out: &mut serde_json::Map<String, serde_json::Value>,
) {
    let executor = if single_threaded {
        "single-threaded"
    } else {
        "multi-threaded"
    };
    section(&format!(
        "frame time with {} live tickets ({executor} executor)",
        profile.tickets
    ));
    let (mut app, mut now) = bevygap_loadgen::queue_bench::bench_core(
        bevygap_matchmaker::queues::QueueProfiles::default(),
        single_threaded,
    );
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..profile.tickets {
        app.world_mut().write_message(TicketRequested {
            ticket_id: TicketId(format!("t-{i}")),
            game: GameRef::new(GAME, VERSION),
            client_ip: None,
            region_pings: Vec::new(),
            queue: None,
            responder: TicketResponder(tx.clone()),
        });
    }
    app.update();
    let mut frames = Vec::with_capacity(profile.frames);
    for _ in 0..profile.frames {
        now += Duration::from_millis(16);
        app.insert_resource(TimeUpdateStrategy::ManualInstant(now));
        let started = Instant::now();
        app.update();
        frames.push(started.elapsed());
        // Outbound allocation requests pile up without a fleet; drop them like the driver would.
        app.world_mut()
            .resource_mut::<Messages<bevygap_matchmaker::messages::AllocateDeployment>>()
            .clear();
    }
    let p = Percentiles::of(&mut frames);
    println!(
        "frame p50 {:.3} ms, p99 {:.3} ms ({}), max {:.3} ms — target ≤ 2 ms: {}",
        p.p50,
        p.p99,
        vs_floor(p.p99),
        p.max,
        verdict(p.p99, 2.0, true)
    );
    let key = format!("frame_{}", executor.replace('-', "_"));
    out.insert(format!("{key}_ms_p50"), p.p50.into());
    out.insert(format!("{key}_ms_p99"), p.p99.into());
    record_p99(out, &key, p.p99);
}

async fn warm_fleet(
    profile: &Profile,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    section("warm fleet: request → token");
    let seats = 1_000_000;
    let fleet = WarmFleet::start(4, seats).await?;
    let requests = (profile.warm_rate * profile.warm_secs) as usize;
    let (base, paced) = paced_seed_load(&fleet, profile, "target").await?;
    out.insert("warm_seed_paced".into(), serde_json::to_value(&paced)?);
    record_p99(out, "warm_seed_paced", paced.latency_ms.p99);

    let closed = run_load(LoadConfig {
        rate: None,
        clients: 32,
        ramp_up: Duration::ZERO,
        max_requests: requests,
        ..base.clone()
    })
    .await?;
    print!("seed JSON closed loop (max sustained):\n{}", closed.table());
    println!("p99 {}", vs_floor(closed.latency_ms.p99));
    out.insert("warm_seed_closed".into(), serde_json::to_value(&closed)?);
    record_p99(out, "warm_seed_closed", closed.latency_ms.p99);

    // Every request at once, each on its own websocket: no answer may be lost.
    let burst = run_load(LoadConfig {
        rate: None,
        clients: profile.burst_requests,
        ramp_up: Duration::ZERO,
        max_requests: profile.burst_requests,
        ..base.clone()
    })
    .await?;
    print!(
        "seed JSON, {} concurrent requests:\n{}",
        profile.burst_requests,
        burst.table()
    );
    out.insert("warm_seed_burst".into(), serde_json::to_value(&burst)?);

    let simplenet = run_load(LoadConfig {
        url: fleet.simplenet_url(),
        protocol: Protocol::Simplenet,
        rate: None,
        clients: 32,
        ramp_up: Duration::ZERO,
        max_requests: requests,
        ..base
    })
    .await?;
    print!("simplenet closed loop:\n{}", simplenet.table());
    println!("p99 {}", vs_floor(simplenet.latency_ms.p99));
    record_p99(out, "warm_simplenet_closed", simplenet.latency_ms.p99);
    out.insert(
        "warm_simplenet_closed".into(),
        serde_json::to_value(&simplenet)?,
    );

    section("seat freed after a disconnect (seat ledger watch → ECS)");
    let dep = KeyToken::new("d", "warm-0")?;
    let mut samples = Vec::with_capacity(profile.seat_samples);
    for i in 0..profile.seat_samples {
        // A seat no load client holds (the last ones of a million), connected then freed.
        let seat = seats - 1 - i as u32;
        let key = seat_key(&dep, seat);
        let record = SeatRecord {
            deployment_id: "warm-0".into(),
            seat,
            holder: SeatHolder::Connected {
                reservation_id: "r".into(),
                client_id: 9_000_000 + i as u64,
                connected_at_ms: 0,
            },
        };
        let expected = fleet.stores.seats.current(&key).await?.revision;
        let written = fleet.stores.seats.take(&record, expected, None).await?;
        wait_connected(&fleet, true).await;
        let started = Instant::now();
        fleet
            .stores
            .seats
            .free(&key, written.revision, BucketSpec::MARKER_TTL)
            .await?;
        wait_connected(&fleet, false).await;
        samples.push(started.elapsed());
    }
    let p = Percentiles::of(&mut samples);
    println!(
        "seat freed → free in the ECS: p50 {:.2} ms, p99 {:.2} ms ({}; {} samples; includes the inspection poll) — target ≤ 50 ms: {}",
        p.p50,
        p.p99,
        vs_floor(p.p99),
        samples.len(),
        verdict(p.p99, 50.0, true)
    );
    record_p99(out, "seat_freed", p.p99);
    out.insert("seat_freed_ms_p50".into(), p.p50.into());
    out.insert("seat_freed_ms_p99".into(), p.p99.into());

    Ok(())
}

/// The paced load again, with a CPU hog on one core beside it: how the tail degrades, and
/// that no request fails.
async fn noisy_neighbour(
    profile: &Profile,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    section("warm fleet, paced, with a CPU hog on one core");
    let fleet = WarmFleet::start(4, 1_000_000).await?;
    // A busy shell loop, on core 1 when `taskset` is there (util-linux), else wherever it runs.
    let mut hog = if which("taskset") {
        std::process::Command::new("taskset")
            .args(["-c", "1", "sh", "-c", "while :; do :; done"])
            .spawn()?
    } else {
        println!("(taskset not found: the hog is not pinned)");
        std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()?
    };
    let result = paced_seed_load(&fleet, profile, "beside a CPU hog").await;
    let _ = hog.kill();
    let _ = hog.wait();
    let (_, paced) = result?;
    let failed: usize = paced.errors.values().sum();
    println!(
        "{} of {} requests answered with a session, {failed} failed",
        paced.ready, paced.requests
    );
    out.insert("noisy_paced".into(), serde_json::to_value(&paced)?);
    record_p99(out, "noisy_paced", paced.latency_ms.p99);
    Ok(())
}

/// Whether `program` is on `PATH`.
fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The warm fleet's paced seed JSON load (printed with its verdict), and its configuration for
/// the closed loops that follow.
async fn paced_seed_load(
    fleet: &WarmFleet,
    profile: &Profile,
    rate_label: &str,
) -> anyhow::Result<(LoadConfig, bevygap_loadgen::Report)> {
    let base = LoadConfig {
        url: fleet.seed_url(),
        protocol: Protocol::Seed,
        game: GAME.into(),
        version: VERSION.into(),
        clients: 64,
        rate: Some(profile.warm_rate),
        ramp_up: Duration::from_secs(1),
        max_requests: (profile.warm_rate * profile.warm_secs) as usize,
        max_duration: Duration::from_secs_f64(profile.warm_secs + 10.0),
        request_timeout: Duration::from_secs(10),
        allow_remote: false,
    };
    let paced = run_load(base.clone()).await?;
    print!(
        "seed JSON at {:.0} req/s {rate_label}:\n{}",
        profile.warm_rate,
        paced.table()
    );
    println!(
        "p99 {:.2} ms ({}) — target ≤ 10 ms at 2,000 req/s: {}",
        paced.latency_ms.p99,
        vs_floor(paced.latency_ms.p99),
        verdict(paced.latency_ms.p99, 10.0, true)
    );
    Ok((base, paced))
}

/// Several matchmakers on one NATS, sharing one seat ledger: the load is spread over them, and
/// the figures are for all of them together, with the rate of seat writes lost to another one.
async fn several_matchmakers(
    matchmakers: usize,
    profile: &Profile,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    section(&format!(
        "{matchmakers} matchmakers on one NATS: request → token"
    ));
    let fleet = WarmFleet::start_many(matchmakers, 4, 1_000_000).await?;
    let (base, paced) = paced_seed_load(&fleet, profile, "in total").await?;
    let closed = run_load(LoadConfig {
        rate: None,
        clients: 32,
        ramp_up: Duration::ZERO,
        ..base
    })
    .await?;
    print!("seed JSON closed loop, all together:\n{}", closed.table());
    let (mut taken, mut conflicts) = (0u64, 0u64);
    for port in &fleet.inspect_ports {
        if let Some(summary) = bevygap_loadgen::rpc_summary(*port).await {
            taken += summary["result"]["ledger"]["seats_taken"]
                .as_u64()
                .unwrap_or(0);
            conflicts += summary["result"]["ledger"]["conflicts"]
                .as_u64()
                .unwrap_or(0);
        }
    }
    let rate = conflicts as f64 / (taken + conflicts).max(1) as f64 * 100.0;
    println!("seat writes: {taken} taken, {conflicts} lost to another matchmaker ({rate:.2} %)");
    let key = format!("matchmakers_{matchmakers}");
    out.insert(
        key,
        serde_json::json!({
            "paced": paced,
            "closed": closed,
            "seats_taken": taken,
            "conflicts": conflicts,
            "conflict_percent": rate,
        }),
    );
    Ok(())
}

/// Idle connections against a matchmaker in its own process, so its RSS is measured alone.
async fn idle_connections(
    profile: &Profile,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    section(&format!(
        "{} idle simplenet connections",
        profile.idle_connections
    ));
    let binary = std::env::current_exe()?.with_file_name("bevygap_matchmaker");
    anyhow::ensure!(
        binary.is_file(),
        "{} not built; run through ci/bench.sh",
        binary.display()
    );
    let nats = bevygap_test_support::NatsServer::start()?;
    let port = bevygap_test_support::free_tcp_port()?;
    let key: String = (0..32).map(|i| format!("{:02x}", i + 1)).collect();
    let mut child = std::process::Command::new(&binary)
        .args([
            "--app-name",
            GAME,
            "--app-version",
            VERSION,
            "--lightyear-protocol-id",
            "1",
        ])
        .args([
            "--fleet",
            "static",
            "--remote-port",
            "0",
            "--metrics-port",
            "0",
            "--nats-insecure",
            "--log",
            "warn",
        ])
        .args([
            "--max-connections-per-ip",
            "100000",
            "--max-connections",
            "100000",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--nats-host",
            &nats.address(),
        ])
        .env("LIGHTYEAR_PRIVATE_KEY", key)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "the matchmaker did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("ws://127.0.0.1:{port}/ws");
    let _warm = bevygap_loadgen::simplenet_connect(&url, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut clients = Vec::with_capacity(profile.idle_connections);
    let mut failed = 0usize;
    for _ in 0..profile.idle_connections {
        match bevygap_loadgen::simplenet_connect(&url, Duration::from_secs(10)).await {
            Ok(client) => clients.push(client),
            Err(_) => failed += 1,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    let per = after.saturating_sub(before) as f64 / clients.len().max(1) as f64;
    println!(
        "{} connected ({failed} failed); matchmaker RSS {before} → {after} KiB: {per:.1} KiB per connection — target ≤ 16 KiB: {}",
        clients.len(),
        verdict(per, 16.0, true)
    );
    out.insert("idle_connections".into(), clients.len().into());
    out.insert("idle_kib_per_connection".into(), per.into());
    drop(clients);
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// Cold fleet: a request when no server runs waits for the local fleet to start one.
fn cold_fleet(
    samples: usize,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    section("cold fleet: request → ready (local fleet starts a server)");
    let server_binary = std::env::current_exe()?.with_file_name("example_server");
    anyhow::ensure!(
        server_binary.is_file(),
        "{} not built; run through ci/bench.sh",
        server_binary.display()
    );
    let config = bevygap_example_game::demo::DemoConfig {
        server_binary,
        bots: 1,
        seats_per_server: 4,
        play_for: Duration::ZERO,
        empty_server_ttl: Duration::from_secs(1),
        token_expire_secs: 2,
        transport: "udp".into(),
        fleet: bevygap_example_game::demo::DemoFleet::Local,
        nats_roles: false,
        nats_tls: false,
        queues: Default::default(),
        backfill_queue: None,
    };
    let env = bevygap_example_game::demo::DemoEnv::start(&config)?;
    let request = format!(
        r#"{{"game":"{}","version":"{}"}}"#,
        bevygap_example_game::GAME,
        bevygap_example_game::VERSION
    );
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Wait until no server runs, then ask.
        let deadline = Instant::now() + Duration::from_secs(30);
        while env.observed(|o| o.leases_added.len() != o.leases_removed.len())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let started = Instant::now();
        let outcome = env.block_on(bevygap_loadgen::seed_client::seed_request(
            &env.seed_url(),
            &request,
            Duration::from_secs(60),
        ));
        match outcome {
            bevygap_loadgen::Outcome::Ready(_) => times.push(started.elapsed()),
            other => println!("cold request failed: {other:?}"),
        }
    }
    let p = Percentiles::of(&mut times);
    println!(
        "{} cold starts: p50 {:.0} ms, max {:.0} ms (process start, NATS connect, lease, KV watch)",
        times.len(),
        p.p50,
        p.max
    );
    out.insert("cold_ms_p50".into(), p.p50.into());
    out.insert("cold_ms_max".into(), p.max.into());
    Ok(())
}

async fn wait_connected(fleet: &WarmFleet, connected: bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let reply = bevygap_loadgen::rpc_summary(fleet.inspect_port).await;
        let now_connected = reply
            .as_ref()
            .and_then(|v| v["result"]["deployments"].as_array().cloned())
            .map(|d| {
                d.iter()
                    .any(|d| d["id"] == "warm-0" && d["connected"].as_u64() == Some(1))
            })
            .unwrap_or(false);
        if now_connected == connected || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The matchmaking-queue rows: capacity in matched tickets per second, frame time with 10,000 and
/// 100,000 tickets waiting in one queue, and time to match at a steady arrival rate.
fn queues(
    profile: &Profile,
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    use bevygap_loadgen::queue_bench::{QueueBenchConfig, run_queue};
    section("queues: 2v2, skill within 100 widening to 300 after 5 s, a party in five tickets");
    let capacity = run_queue(QueueBenchConfig {
        waiting: 0,
        arrivals_per_sec: 20_000.0,
        secs: profile.queue_secs,
    })?;
    println!(
        "capacity: {} tickets matched in {:.0} ms of frames: {:.0} matched tickets/s — target ≥ 5,000: {}",
        capacity.matched,
        capacity.matched as f64 / capacity.matched_per_sec * 1000.0,
        capacity.matched_per_sec,
        verdict(capacity.matched_per_sec, 5000.0, false)
    );
    out.insert(
        "queue_matched_tickets_per_sec".into(),
        capacity.matched_per_sec.into(),
    );
    for waiting in [10_000, 100_000] {
        let run = run_queue(QueueBenchConfig {
            waiting,
            arrivals_per_sec: 2000.0,
            secs: profile.queue_secs,
        })?;
        let target = if waiting == 10_000 {
            format!(" — target ≤ 2 ms: {}", verdict(run.frames.p99, 2.0, true))
        } else {
            String::new()
        };
        println!(
            "{waiting} waiting, 2,000 joining/s: frame p50 {:.3} ms, p99 {:.3} ms ({}), max {:.3} ms{target}; \
             time to match p50 {:.0} ms, p99 {:.0} ms (simulated); {} matched, {} waiting at the end",
            run.frames.p50,
            run.frames.p99,
            vs_floor(run.frames.p99),
            run.frames.max,
            run.time_to_match.p50,
            run.time_to_match.p99,
            run.matched,
            run.waiting_at_end
        );
        let key = format!("queue_frame_{waiting}_waiting");
        out.insert(format!("{key}_ms_p50"), run.frames.p50.into());
        out.insert(format!("{key}_ms_p99"), run.frames.p99.into());
        record_p99(out, &key, run.frames.p99);
        out.insert(
            format!("queue_time_to_match_{waiting}_waiting_ms_p50"),
            run.time_to_match.p50.into(),
        );
        out.insert(
            format!("queue_time_to_match_{waiting}_waiting_ms_p99"),
            run.time_to_match.p99.into(),
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profile = match args.profile.as_str() {
        "short" => Profile {
            floor_samples: 2000,
            warm_secs: 5.0,
            warm_rate: 2000.0,
            tokens: 20_000,
            tickets: 10_000,
            frames: 200,
            seat_samples: 50,
            idle_connections: 1000,
            burst_requests: 10_000,
            cold_samples: 2,
            queue_secs: 5.0,
        },
        "long" => Profile {
            floor_samples: 5000,
            warm_secs: 30.0,
            warm_rate: 2000.0,
            tokens: 200_000,
            tickets: 10_000,
            frames: 2000,
            seat_samples: 500,
            idle_connections: 10_000,
            burst_requests: 10_000,
            cold_samples: 5,
            queue_secs: 30.0,
        },
        other => anyhow::bail!("--profile must be short or long, not {other}"),
    };
    let wants = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    let mut out = serde_json::Map::new();
    println!(
        "bevygap_bench ({} profile, {} build)",
        args.profile,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    // First, so every latency row can be read against it (always measured).
    noise_floor(&profile, &mut out);
    if wants("tokens") {
        token_minting(&profile, &mut out);
    }
    if wants("frame") {
        frame_time(&profile, true, &mut out);
        frame_time(&profile, false, &mut out);
    }
    if wants("queues") {
        queues(&profile, &mut out)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if wants("warm") {
        runtime.block_on(warm_fleet(&profile, &mut out))?;
    }
    if wants("noisy") {
        runtime.block_on(noisy_neighbour(&profile, &mut out))?;
    }
    if wants("several") {
        for matchmakers in [2, 3] {
            runtime.block_on(several_matchmakers(matchmakers, &profile, &mut out))?;
        }
    }
    if wants("idle") {
        runtime.block_on(idle_connections(&profile, &mut out))?;
    }
    if wants("cold") {
        cold_fleet(profile.cold_samples, &mut out)?;
    }
    if let Some(path) = args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}
