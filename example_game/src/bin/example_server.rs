//! The example game server binary (started by the local fleet).

use std::process::ExitCode;

use bevy::app::AppExit;

use bevygap_example_game::server::{ServerArgs, server_app};
use clap::Parser;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    match args.into_config() {
        Ok(config) => match server_app(config).run() {
            AppExit::Success => ExitCode::SUCCESS,
            AppExit::Error(code) => ExitCode::from(code.get()),
        },
        Err(error) => {
            eprintln!("example_server: {error}");
            ExitCode::from(2)
        }
    }
}
