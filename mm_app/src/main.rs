//! The `bevygap_matchmaker` binary: parse flags, build the app, run it.

use std::process::ExitCode;

use bevygap_matchmaker::app::build_app;
use bevygap_matchmaker::cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bevygap_matchmaker: {error}");
            return ExitCode::from(2);
        }
    };
    match build_app(config) {
        Ok(mut app) => {
            app.run();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bevygap_matchmaker: {error}");
            ExitCode::from(2)
        }
    }
}
