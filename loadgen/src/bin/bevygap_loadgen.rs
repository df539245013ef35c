//! The load generator binary: drives a matchmaker and prints (and optionally writes) a report.

use std::process::ExitCode;
use std::time::Duration;

use bevygap_loadgen::{LoadConfig, Protocol, run_load};
use clap::Parser;

/// Drives a Bevygap matchmaker with many clients and reports latency, throughput and errors.
#[derive(Debug, Parser)]
#[command(name = "bevygap_loadgen")]
struct Args {
    /// Endpoint URL: `ws://127.0.0.1:3000/matchmaker/ws` (seed) or `ws://127.0.0.1:3000/ws`.
    #[arg(long)]
    url: String,
    /// Client protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Seed)]
    protocol: Protocol,
    /// Game name.
    #[arg(long, default_value = "bevygap-demo")]
    game: String,
    /// Game version.
    #[arg(long, default_value = "1")]
    version: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Target requests per second (omit for a closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Ramp-up seconds.
    #[arg(long, default_value_t = 0.0)]
    ramp_up_secs: f64,
    /// At most this many requests.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// At most this many seconds.
    #[arg(long, default_value_t = 30.0)]
    duration_secs: f64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Write the JSON report here.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
    /// Allow a non-loopback target.
    #[arg(long)]
    allow_remote: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = LoadConfig {
        url: args.url,
        protocol: args.protocol,
        game: args.game,
        version: args.version,
        clients: args.clients,
        rate: args.rate,
        ramp_up: Duration::from_secs_f64(args.ramp_up_secs.max(0.0)),
        max_requests: args.requests,
        max_duration: Duration::from_secs_f64(args.duration_secs.clamp(0.1, 3600.0)),
        request_timeout: Duration::from_secs_f64(args.timeout_secs.max(0.1)),
        allow_remote: args.allow_remote,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bevygap_loadgen: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_load(config.clone())) {
        Ok(report) => {
            print!("{}", report.table());
            if let Some(path) = args.json_out {
                let json = serde_json::json!({ "config": config, "report": report });
                if let Err(error) = std::fs::write(
                    &path,
                    serde_json::to_string_pretty(&json).unwrap_or_default(),
                ) {
                    eprintln!("bevygap_loadgen: cannot write {}: {error}", path.display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bevygap_loadgen: {error}");
            ExitCode::from(2)
        }
    }
}
