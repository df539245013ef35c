//! The `bevygap_matchmaker` binary: parse flags, build the app, run it.

use std::process::ExitCode;

use bevygap_matchmaker::app::build_app;
use bevygap_matchmaker::bridge::{ShutdownFlag, Wake};
use bevygap_matchmaker::cli::Cli;
use bevygap_matchmaker::runtime::AsyncRuntime;
use bevygap_matchmaker::shutdown::stop_on_signals;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    for warning in cli.secrets_on_command_line() {
        eprintln!("bevygap_matchmaker: warning: {warning}");
    }
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("bevygap_matchmaker: {error}");
            return ExitCode::from(2);
        }
    };
    match build_app(config) {
        Ok(mut app) => {
            let world = app.world_mut();
            let flag = world
                .get_resource_or_insert_with(ShutdownFlag::default)
                .clone();
            let wake = world.get_resource_or_insert_with(Wake::default).clone();
            let runtime = world.resource::<AsyncRuntime>().0.clone();
            let _guard = runtime.enter();
            stop_on_signals(flag, wake);
            app.run();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bevygap_matchmaker: {error}");
            ExitCode::from(2)
        }
    }
}
