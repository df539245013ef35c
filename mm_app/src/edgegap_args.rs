//! Command-line settings of the Edgegap backend, shared by the matchmaker and `bevygap_edgegap`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bevygap_shared::secret::Secret;
use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};

use crate::error::ConfigError;
use crate::fleet::edgegap::client::{DEFAULT_BASE_URL, EdgegapApiConfig};
use crate::fleet::edgegap::fleet::{EdgegapFleetConfig, EdgegapMode};

/// How to reach the Edgegap API.
#[derive(Debug, Clone, Args)]
pub struct EdgegapApiArgs {
    /// Base URL of the Edgegap API (an offline replica in tests and demos).
    #[arg(long, env = "EDGEGAP_API_URL", default_value = DEFAULT_BASE_URL)]
    pub edgegap_url: String,
    /// The Edgegap API key, with or without its `token ` prefix.
    #[arg(long, env = "EDGEGAP_API_KEY", hide_env_values = true)]
    pub edgegap_api_key: Option<Secret>,
    /// A file holding the Edgegap API key (instead of EDGEGAP_API_KEY).
    #[arg(long, env = "EDGEGAP_API_KEY_FILE")]
    pub edgegap_api_key_file: Option<PathBuf>,
}

impl EdgegapApiArgs {
    /// The API configuration; fails without a key or with an unusable URL.
    pub fn api_config(&self) -> Result<EdgegapApiConfig, ConfigError> {
        let key = match (&self.edgegap_api_key, &self.edgegap_api_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "edgegap-api-key",
                    "set EDGEGAP_API_KEY or --edgegap-api-key-file, not both",
                ));
            }
            (Some(key), None) => key.clone(),
            (None, Some(path)) => Secret::new(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        ConfigError::invalid(
                            "edgegap-api-key-file",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                    .trim(),
            ),
            (None, None) => {
                return Err(ConfigError::invalid(
                    "edgegap-api-key",
                    "missing: set EDGEGAP_API_KEY (the API token from Edgegap's dashboard)",
                ));
            }
        };
        if key.expose().trim().is_empty() {
            return Err(ConfigError::invalid("edgegap-api-key", "is empty"));
        }
        let url = self.edgegap_url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "edgegap-url",
                "expected an http(s) URL such as https://api.edgegap.com",
            ));
        }
        let mut config = EdgegapApiConfig::new(key);
        config.base_url = url.to_owned();
        Ok(config)
    }
}

/// Which Edgegap API starts servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EdgegapModeArg {
    /// v2 deployments: one per allocation, stopped by Bevygap when empty.
    Deployments,
    /// v1 seat sessions (the seed's flow): Edgegap picks or starts the deployment.
    Sessions,
}

/// How the matchmaker uses Edgegap (`--fleet edgegap`).
#[derive(Debug, Clone, Args)]
pub struct EdgegapFleetArgs {
    /// How to reach the API.
    #[command(flatten)]
    pub api: EdgegapApiArgs,
    /// The Edgegap application, when it differs from --app-name.
    #[arg(long, env = "EDGEGAP_APP")]
    pub edgegap_app: Option<String>,
    /// v2 deployments or v1 seat sessions.
    #[arg(long, env = "EDGEGAP_MODE", value_enum, default_value_t = EdgegapModeArg::Deployments)]
    pub edgegap_mode: EdgegapModeArg,
    /// Seconds a deployment may take to become ready before it is stopped.
    #[arg(long, env = "EDGEGAP_READY_TIMEOUT_SECS", default_value_t = 90)]
    pub edgegap_ready_timeout_secs: u64,
    /// Public IPs to place servers near when players' IPs are unknown (comma-separated).
    #[arg(long, env = "EDGEGAP_FALLBACK_IP", value_delimiter = ',')]
    pub edgegap_fallback_ip: Vec<IpAddr>,
    /// Tags for every deployment (comma-separated).
    #[arg(
        long,
        env = "EDGEGAP_TAGS",
        value_delimiter = ',',
        default_value = "bevygap"
    )]
    pub edgegap_tag: Vec<String>,
    /// A URL Edgegap calls on deployment events.
    #[arg(long, env = "EDGEGAP_WEBHOOK_URL")]
    pub edgegap_webhook_url: Option<String>,
    /// Do not pass the NATS settings and token key to deployments (configure them in Edgegap's
    /// dashboard instead).
    #[arg(long, env = "EDGEGAP_NO_FORWARD_ENV", value_parser = BoolishValueParser::new())]
    pub edgegap_no_forward_env: bool,
}

impl EdgegapFleetArgs {
    /// The fleet configuration for `app_name`; `forwarded` is what deployments inherit.
    pub fn fleet_config(
        &self,
        app_name: &str,
        forwarded: &[(String, String)],
    ) -> Result<EdgegapFleetConfig, ConfigError> {
        if self.edgegap_ready_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "edgegap-ready-timeout-secs",
                "must be at least 1",
            ));
        }
        let mut config = EdgegapFleetConfig::new(self.edgegap_app.as_deref().unwrap_or(app_name));
        config.mode = match self.edgegap_mode {
            EdgegapModeArg::Deployments => EdgegapMode::Deployments,
            EdgegapModeArg::Sessions => EdgegapMode::Sessions,
        };
        config.ready_timeout = Duration::from_secs(self.edgegap_ready_timeout_secs);
        config.fallback_ips = self.edgegap_fallback_ip.clone();
        config.tags = self.edgegap_tag.clone();
        config.webhook_url = self.edgegap_webhook_url.clone();
        if !self.edgegap_no_forward_env {
            config.env = crate::fleet::edgegap::env::deployment_env(forwarded);
        }
        Ok(config)
    }
}
