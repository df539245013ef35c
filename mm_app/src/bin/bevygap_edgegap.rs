//! `bevygap_edgegap`: operator jobs on the Edgegap app, without the dashboard.
//!
//! ```text
//! bevygap_edgegap check --app spaceships --version 1,2
//! bevygap_edgegap create-version --app spaceships --version 1.2.3 \
//!     --image registry.edgegap.com/my-project/spaceships:1.2.3
//! bevygap_edgegap set-ca-argument --app spaceships --version 1 --ca-file rootCA.pem
//! bevygap_edgegap set-arguments --app spaceships --version 1 --arguments "--capacity 8"
//! bevygap_edgegap deployments
//! bevygap_edgegap stop 9f3a1c2b7d4e
//! ```
//!
//! Every job reads `EDGEGAP_API_KEY` (or `--edgegap-api-key-file`) and `--edgegap-url`.

use std::path::PathBuf;
use std::process::ExitCode;

use bevygap_matchmaker::edgegap_args::EdgegapApiArgs;
use bevygap_matchmaker::fleet::edgegap::api::{NewVersion, NewVersionPort, split_image};
use bevygap_matchmaker::fleet::edgegap::checks::check_app;
use bevygap_matchmaker::fleet::edgegap::client::{EdgegapClient, Removal};
use bevygap_matchmaker::fleet::edgegap::operator::{ca_argument, with_ca_argument};
use clap::{Parser, Subcommand};

/// Operator jobs on the Edgegap app: checks, start arguments, deployments.
#[derive(Debug, Parser)]
#[command(name = "bevygap_edgegap", version, about)]
struct Cli {
    #[command(flatten)]
    api: EdgegapApiArgs,
    #[command(subcommand)]
    job: Job,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Checks that the app and versions exist, are active and expose a port.
    Check {
        /// The Edgegap application.
        #[arg(long, env = "APP_NAME")]
        app: String,
        /// Its versions (comma-separated).
        #[arg(long, env = "APP_VERSION", value_delimiter = ',', required = true)]
        version: Vec<String>,
    },
    /// Replaces a version's start arguments.
    SetArguments {
        /// The Edgegap application.
        #[arg(long, env = "APP_NAME")]
        app: String,
        /// The version.
        #[arg(long, env = "APP_VERSION")]
        version: String,
        /// The new arguments.
        #[arg(long, allow_hyphen_values = true)]
        arguments: String,
    },
    /// Gives a version's servers the NATS CA as `--ca_contents` (Edgegap's environment values
    /// are limited to 255 bytes); other arguments are kept.
    SetCaArgument {
        /// The Edgegap application.
        #[arg(long, env = "APP_NAME")]
        app: String,
        /// The version.
        #[arg(long, env = "APP_VERSION")]
        version: String,
        /// The CA certificate (PEM) the NATS server's certificate chains to.
        #[arg(long)]
        ca_file: PathBuf,
    },
    /// Creates a version running an image, with its game port named `gameport` (the release
    /// workflow's last step).
    CreateVersion {
        /// The Edgegap application.
        #[arg(long, env = "APP_NAME")]
        app: String,
        /// The new version's name (the game version).
        #[arg(long, env = "APP_VERSION")]
        version: String,
        /// The image, `registry/path/image:tag` (a version tag, not `latest`).
        #[arg(long)]
        image: String,
        /// The game port in the container.
        #[arg(long, default_value_t = 6420)]
        port: u16,
        /// Its protocol.
        #[arg(long, default_value = "UDP")]
        protocol: String,
        /// vCPU units (1024 = one vCPU).
        #[arg(long, default_value_t = 256)]
        cpu: u32,
        /// Memory, MB.
        #[arg(long, default_value_t = 256)]
        memory_mb: u32,
    },
    /// Lists the deployments.
    Deployments,
    /// Stops deployments.
    Stop {
        /// Deployment (request) ids.
        #[arg(required = true)]
        request_id: Vec<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    bevygap_shared::nats::install_crypto_provider();
    let cli = Cli::parse();
    let client = cli
        .api
        .api_config()
        .map_err(|e| e.to_string())
        .and_then(|config| EdgegapClient::new(&config).map_err(|e| e.to_string()));
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            eprintln!("bevygap_edgegap: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&client, cli.job).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bevygap_edgegap: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(client: &EdgegapClient, job: Job) -> Result<(), String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match job {
        Job::Check { app, version } => {
            let versions = check_app(client, &app, &version)
                .await
                .map_err(|e| text(&e))?;
            for v in versions {
                let ports: Vec<String> = v
                    .ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}/{}",
                            p.name.as_deref().unwrap_or("(unnamed)"),
                            p.port,
                            p.protocol.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                println!(
                    "ok: {app} {} (image {}:{}, ports {}, arguments {})",
                    v.name,
                    v.docker_image.as_deref().unwrap_or("?"),
                    v.docker_tag.as_deref().unwrap_or("?"),
                    ports.join(", "),
                    if v.arguments.as_deref().is_some_and(|a| !a.is_empty()) {
                        "set"
                    } else {
                        "none"
                    }
                );
            }
        }
        Job::CreateVersion {
            app,
            version,
            image,
            port,
            protocol,
            cpu,
            memory_mb,
        } => {
            let (docker_repository, docker_image, docker_tag) = split_image(&image)?;
            let created = client
                .create_version(
                    &app,
                    &NewVersion {
                        name: version,
                        docker_repository,
                        docker_image,
                        docker_tag,
                        is_active: true,
                        req_cpu: cpu,
                        req_memory: memory_mb,
                        ports: vec![NewVersionPort {
                            port,
                            protocol,
                            name: "gameport".into(),
                            to_check: true,
                            tls_upgrade: false,
                        }],
                        arguments: None,
                    },
                )
                .await
                .map_err(|e| text(&e))?;
            println!(
                "created: {app} {} running {}:{}",
                created.version.name,
                created.version.docker_image.as_deref().unwrap_or("?"),
                created.version.docker_tag.as_deref().unwrap_or("?")
            );
        }
        Job::SetArguments {
            app,
            version,
            arguments,
        } => {
            let updated = client
                .set_version_arguments(&app, &version, &arguments)
                .await
                .map_err(|e| text(&e))?;
            println!(
                "ok: {app} {} starts servers with: {}",
                updated.version.name,
                updated.version.arguments.unwrap_or_default()
            );
        }
        Job::SetCaArgument {
            app,
            version,
            ca_file,
        } => {
            let pem = std::fs::read_to_string(&ca_file)
                .map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
            let argument = ca_argument(&pem).map_err(|e| text(&e))?;
            let current = client
                .app_version(&app, &version)
                .await
                .map_err(|e| text(&e))?;
            let arguments = with_ca_argument(current.arguments.as_deref(), &argument);
            client
                .set_version_arguments(&app, &version, &arguments)
                .await
                .map_err(|e| text(&e))?;
            println!(
                "ok: deployments of {app} {version} get --ca_contents ({} bytes of CA) as a start argument",
                argument.len()
            );
        }
        Job::Deployments => {
            let list = client.deployments().await.map_err(|e| text(&e))?;
            println!(
                "{} deployment(s)",
                list.total_count.unwrap_or(list.data.len() as u64)
            );
            for d in list.data {
                println!(
                    "{}  {}  {}  {}  {}",
                    d.request_id,
                    if d.ready { "ready" } else { "starting" },
                    d.public_ip.as_deref().unwrap_or("-"),
                    d.fqdn.as_deref().unwrap_or("-"),
                    d.tags.join(",")
                );
            }
        }
        Job::Stop { request_id } => {
            for id in request_id {
                match client.stop_deployment(&id).await.map_err(|e| text(&e))? {
                    Removal::Removed => println!("ok: {id} is stopping"),
                    Removal::AlreadyGone => println!("ok: {id} was already gone"),
                }
            }
        }
    }
    Ok(())
}
