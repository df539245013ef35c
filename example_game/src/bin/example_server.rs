//! The example game server binary (started by the local fleet).

use std::process::ExitCode;

use bevygap_example_game::server::{ServerArgs, server_app};
use clap::Parser;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    match args.into_config() {
        Ok(config) => {
            server_app(config).run();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("example_server: {error}");
            ExitCode::from(2)
        }
    }
}
