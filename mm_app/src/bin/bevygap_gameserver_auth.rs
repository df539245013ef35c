//! `bevygap_gameserver_auth`: the key of the matchmakers' NATS auth callout, and the
//! credentials of a game server the matchmaker does not start itself.
//!
//! ```text
//! bevygap_gameserver_auth new-key --seed-file /etc/bevygap/callout.seed
//! bevygap_gameserver_auth credentials --app spaceships --deployment eu-1 \
//!     --seed-file /etc/bevygap/callout.seed --password-file eu-1.password
//! ```
//!
//! See `assets/nats-auth.conf` and the README's Security section.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bevygap_matchmaker::gameserver_auth::{
    DEFAULT_JWT_TTL, GameServerAuth, GameServerAuthConfig, new_key,
};
use bevygap_shared::names::{AppNames, KeyToken};
use bevygap_shared::secret::Secret;
use clap::{Parser, Subcommand};

/// The NATS auth callout key and game-server credentials.
#[derive(Debug, Parser)]
#[command(name = "bevygap_gameserver_auth", version, about)]
struct Cli {
    #[command(subcommand)]
    job: Job,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Makes a callout key: writes its seed to a new file (readable by its owner only) and
    /// prints the public key for nats-server's `auth_callout.issuer`.
    NewKey {
        /// Where the seed goes; the file must not exist.
        #[arg(long)]
        seed_file: PathBuf,
    },
    /// Writes the password of one deployment's game server (user `{app}:{deployment}`) to a
    /// new file, for servers started outside the matchmaker (e.g. a static list).
    Credentials {
        /// The app (the matchmaker's --app-name).
        #[arg(long, env = "APP_NAME")]
        app: String,
        /// The deployment id the server runs as (its lease key).
        #[arg(long)]
        deployment: String,
        /// The callout key's seed file.
        #[arg(long, env = "BEVYGAP_GAMESERVER_AUTH_KEY_FILE")]
        seed_file: PathBuf,
        /// Where the password goes; the file must not exist.
        #[arg(long)]
        password_file: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bevygap_gameserver_auth: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(job: Job) -> Result<(), String> {
    match job {
        Job::NewKey { seed_file } => {
            let (seed, public) = new_key();
            write_private(&seed_file, seed.expose())?;
            println!("{public}");
            eprintln!(
                "seed written to {}; give nats-server BEVYGAP_CALLOUT_ISSUER={public} and the matchmakers --gameserver-auth-key-file {}",
                seed_file.display(),
                seed_file.display()
            );
            Ok(())
        }
        Job::Credentials {
            app,
            deployment,
            seed_file,
            password_file,
        } => {
            let names = AppNames::new(&app).map_err(|e| e.to_string())?;
            let deployment =
                KeyToken::new("deployment id", deployment.as_str()).map_err(|e| e.to_string())?;
            let seed = std::fs::read_to_string(&seed_file)
                .map_err(|e| format!("{} cannot be read: {e}", seed_file.display()))?;
            let auth = GameServerAuth::new(
                &GameServerAuthConfig {
                    seed: Secret::new(seed),
                    jwt_ttl: DEFAULT_JWT_TTL.max(Duration::from_secs(1)),
                },
                names,
            )
            .map_err(|e| e.to_string())?;
            let credentials = auth.credentials(&deployment);
            write_private(&password_file, credentials.password.expose())?;
            println!("NATS_USER={}", credentials.user);
            eprintln!(
                "password written to {}; give it to the server as NATS_PASSWORD",
                password_file.display()
            );
            Ok(())
        }
    }
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("{} cannot be created: {e}", path.display()))?;
    file.write_all(format!("{text}\n").as_bytes())
        .map_err(|e| format!("{} cannot be written: {e}", path.display()))
}
