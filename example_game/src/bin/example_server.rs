//! The example game server binary (started by the local fleet).

use std::process::ExitCode;

use bevy::app::AppExit;

use bevygap_example_game::server::{BackfillQueue, ServerArgs, server_app};
use clap::Parser;

fn main() -> ExitCode {
    let mut args = ServerArgs::parse();
    let backfill_queue = args.backfill_queue.take();
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("example_server: {error}");
            return ExitCode::from(2);
        }
    };
    let mut app = server_app(config);
    if let Some(queue) = backfill_queue {
        app.insert_resource(BackfillQueue(queue));
    }
    match app.run() {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    }
}
