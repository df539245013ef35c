//! The example bot client binary: one player asks for a seat, plays, leaves.

use std::process::ExitCode;
use std::time::Duration;

use bevygap_example_game::bot::{BotOutcome, run_bot};
use clap::Parser;

/// A headless bot player.
#[derive(Debug, Parser)]
#[command(name = "example_client")]
struct Args {
    /// The matchmaker's simplenet URL.
    #[arg(
        long,
        env = "BEVYGAP_MATCHMAKER_URL",
        default_value = "ws://127.0.0.1:3000/ws"
    )]
    matchmaker_url: String,
    /// Seconds to stay connected.
    #[arg(long, default_value_t = 3)]
    play_secs: u64,
    /// Seconds matchmaking may take.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run_bot(
        &args.matchmaker_url,
        Duration::from_secs(args.play_secs),
        Duration::from_secs(args.timeout_secs),
    ) {
        BotOutcome::Played {
            request_to_token,
            request_to_connected,
        } => {
            println!(
                "played: token after {request_to_token:?}, connected after {request_to_connected:?}"
            );
            ExitCode::SUCCESS
        }
        BotOutcome::Failed(reason) => {
            eprintln!("example_client: {reason}");
            ExitCode::from(1)
        }
    }
}
