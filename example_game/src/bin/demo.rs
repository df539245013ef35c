//! The local demo: `cargo run -p bevygap_example_game --bin demo` (or `bash ci/demo.sh`), and
//! the local stack that stays up: `demo --serve` (or `bash ci/serve.sh`), with the browser
//! client's page: `demo --browser` (or `bash ci/demo.sh --browser`).

use std::process::ExitCode;
use std::time::Duration;

use bevygap_example_game::demo::{DemoConfig, DemoEnv, DemoFleet, ReplicaOptions, run_demo};
use bevygap_example_game::web_page::{built_page_dir, serve_page};
use clap::Parser;

/// Runs NATS, the matchmaker with the local fleet, and bot players, then prints a summary.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Bot players.
    #[arg(long, default_value_t = 6)]
    bots: usize,
    /// Seats per game server.
    #[arg(long, default_value_t = 4)]
    seats: u32,
    /// Seconds each bot stays.
    #[arg(long, default_value_t = 3)]
    play_secs: u64,
    /// Seconds an empty server lives before it is stopped.
    #[arg(long, default_value_t = 3)]
    empty_ttl_secs: u64,
    /// What the game servers listen on: `udp` or `webtransport`.
    #[arg(long, default_value = "udp")]
    transport: String,
    /// Start servers through the matchmaker's Edgegap backend and the offline Edgegap replica
    /// (the whole Edgegap flow on this machine) instead of the local fleet.
    #[arg(long)]
    edgegap_replica: bool,
    /// Keep NATS, the matchmaker and its game servers running until Ctrl-C (or SIGTERM), printing
    /// where to connect, instead of running bots.
    #[arg(long)]
    serve: bool,
    /// Like `--serve`, with WebTransport game servers and the browser client's page served on
    /// `--web-port` (build the page first with `bash ci/web.sh`; `ci/demo.sh --browser` does).
    #[arg(long)]
    browser: bool,
    /// The loopback port of the browser page (with `--browser`).
    #[arg(long, default_value_t = 8080)]
    web_port: u16,
}

/// The browser page to serve beside the stack: its directory and port.
struct BrowserPage {
    dir: std::path::PathBuf,
    port: u16,
}

/// Runs the stack (and the browser page) until Ctrl-C or SIGTERM; everything it started stops
/// with it.
fn serve(config: &DemoConfig, page: Option<BrowserPage>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Bind the page's port before anything starts, so a taken port fails fast.
    let page = match page {
        Some(page) => {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(("127.0.0.1", page.port)))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot serve the browser page on 127.0.0.1:{}: {e}; pick another with --web-port",
                        page.port
                    )
                })?;
            let port = listener.local_addr()?.port();
            runtime.spawn(async move {
                if let Err(error) = serve_page(page.dir, listener).await {
                    eprintln!("[serve] {error}");
                }
            });
            Some(port)
        }
        None => None,
    };
    let env = DemoEnv::start(config)?;
    let bot = std::env::current_exe()?.with_file_name("example_client");
    let line = |what: &str, value: String| println!("[serve] {what:<16} {value}");
    line("NATS", env.nats_server.address());
    line(
        "NATS pid",
        env.nats_server
            .pid()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    );
    line("simplenet", env.simplenet_url());
    line("seed JSON", env.seed_url());
    line("status page", env.status_url());
    line(
        "inspection",
        format!(
            "http://127.0.0.1:{} (bevy_remote JSON-RPC, e.g. bevygap/summary)",
            env.inspect_port
        ),
    );
    line(
        "join as a bot",
        format!("{} --matchmaker-url {}", bot.display(), env.simplenet_url()),
    );
    if let Some(port) = page {
        line(
            "browser client",
            format!(
                "http://127.0.0.1:{port}/?matchmaker={}",
                env.simplenet_url()
            ),
        );
        line(
            "seed JSON page",
            format!(
                "http://127.0.0.1:{port}/seed.html?matchmaker={}",
                env.seed_url()
            ),
        );
    }
    println!("[serve] up; Ctrl-C stops everything");
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    })?;
    println!("[serve] stopping the matchmaker, its game servers and NATS");
    drop(env);
    println!("[serve] stopped");
    Ok(())
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    let index = ((values.len() - 1) as f64 * p).round() as usize;
    values[index]
}

fn main() -> ExitCode {
    let args = Args::parse();
    let server_binary = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("example_server"),
        Err(error) => {
            eprintln!("demo: {error}");
            return ExitCode::from(2);
        }
    };
    let config = DemoConfig {
        server_binary,
        bots: args.bots,
        seats_per_server: args.seats,
        play_for: Duration::from_secs(args.play_secs),
        empty_server_ttl: Duration::from_secs(args.empty_ttl_secs),
        token_expire_secs: 15,
        transport: if args.browser {
            "webtransport".into()
        } else {
            args.transport.clone()
        },
        fleet: if args.edgegap_replica {
            DemoFleet::EdgegapReplica(ReplicaOptions::default())
        } else {
            DemoFleet::Local
        },
        nats_roles: false,
        nats_tls: false,
        queues: Default::default(),
        backfill_queue: None,
    };
    if args.serve || args.browser {
        let page = if args.browser {
            match built_page_dir(&config.server_binary) {
                Ok(dir) => Some(BrowserPage {
                    dir,
                    port: args.web_port,
                }),
                Err(error) => {
                    eprintln!("demo: {error}");
                    return ExitCode::from(2);
                }
            }
        } else {
            None
        };
        return match serve(&config, page) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("demo: {error}");
                ExitCode::from(2)
            }
        };
    }
    match run_demo(&config, |line| println!("[demo] {line}")) {
        Ok(mut report) => {
            println!();
            println!("== Bevygap demo summary ==");
            println!(
                "clients connected        {} of {}",
                report.connected, args.bots
            );
            println!(
                "clients seen by servers  {}",
                report.clients_seen_by_servers
            );
            println!("seats per server         {}", args.seats);
            println!("servers started          {}", report.servers_started);
            println!("servers stopped          {}", report.servers_stopped);
            let p50 = percentile(&mut report.token_latencies, 0.5);
            let max = percentile(&mut report.token_latencies, 1.0);
            println!(
                "request -> token         p50 {p50:.1?}, max {max:.1?} (includes server start-up when cold)"
            );
            let p50 = percentile(&mut report.connect_latencies, 0.5);
            println!("request -> connected     p50 {p50:.1?}");
            if !report.edgegap_calls.is_empty() {
                let calls: Vec<String> = report
                    .edgegap_calls
                    .iter()
                    .map(|(route, n)| format!("{route} {n}"))
                    .collect();
                println!("edgegap api calls        {}", calls.join(", "));
            }
            for reason in &report.failed {
                println!("failed: {reason}");
            }
            if report.failed.is_empty() && report.servers_started == report.servers_stopped {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::from(2)
        }
    }
}
