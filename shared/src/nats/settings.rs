//! NATS connection settings, from command-line arguments or the seed's environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::error::NatsError;
use crate::secret::Secret;

/// How to reach NATS. Every field has an env var (the seed's names), so binaries flatten this
/// into their own `clap` parser and libraries call [`NatsSettings::from_env`].
///
/// TLS is on unless `NATS_INSECURE` is set; the server certificate is checked against the system
/// roots plus `NATS_CA` (a PEM file) or `NATS_CA_CONTENTS` (PEM text).
#[derive(Debug, Clone, Args)]
pub struct NatsSettings {
    /// NATS server address, `host` or `host:port` (port 4222 by default).
    #[arg(
        long = "nats-host",
        env = "NATS_HOST",
        default_value = "127.0.0.1:4222"
    )]
    pub host: String,
    /// User name for user/password authentication.
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<Secret>,
    /// A NATS credentials file (JWT + nkey seed), instead of user/password.
    #[arg(long = "nats-creds", env = "NATS_CREDS")]
    pub creds: Option<PathBuf>,
    /// Path to a PEM file with the CA that signed the server's certificate.
    #[arg(long = "nats-ca", env = "NATS_CA")]
    pub ca: Option<PathBuf>,
    /// The CA as PEM text (for hosts that pass config only through env).
    #[arg(
        long = "nats-ca-contents",
        env = "NATS_CA_CONTENTS",
        hide_env_values = true
    )]
    pub ca_contents: Option<Secret>,
    /// Connect without TLS (plain TCP). For local development only.
    #[arg(long = "nats-insecure", env = "NATS_INSECURE", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure: bool,
    /// How long the first connection attempt may take, in milliseconds.
    #[arg(
        long = "nats-connect-timeout-ms",
        env = "NATS_CONNECT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub connect_timeout_ms: u64,
    /// Prefix of this client's reply subjects (`_INBOX` when unset). A game server uses its own
    /// (`_INBOX.{app}.{deployment}`), so a NATS user scoped to one deployment can subscribe to
    /// its replies and to no one else's.
    #[arg(skip)]
    pub inbox_prefix: Option<String>,
}

#[derive(Parser)]
struct EnvOnly {
    #[command(flatten)]
    nats: NatsSettings,
}

impl NatsSettings {
    /// Plain-text settings for a server at `host` with no authentication (tests, local demos).
    pub fn insecure(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            user: None,
            password: None,
            creds: None,
            ca: None,
            ca_contents: None,
            insecure: true,
            connect_timeout_ms: 5000,
            inbox_prefix: None,
        }
    }

    /// Reads the settings from the environment only (`NATS_HOST`, `NATS_USER`, ...).
    pub fn from_env() -> Result<Self, NatsError> {
        EnvOnly::try_parse_from(["bevygap"])
            .map(|e| e.nats)
            .map_err(|e| NatsError::InvalidSettings(e.to_string()))
    }

    /// The first-connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Checks the combination of settings makes sense.
    pub fn validate(&self) -> Result<(), NatsError> {
        let invalid = |m: &str| Err(NatsError::InvalidSettings(m.to_owned()));
        if self.host.trim().is_empty() {
            return invalid("NATS_HOST is empty");
        }
        if self.password.is_some() && self.user.is_none() {
            return invalid("NATS_PASSWORD is set but NATS_USER is not");
        }
        if self.user.is_some() && self.creds.is_some() {
            return invalid("set either NATS_USER/NATS_PASSWORD or NATS_CREDS, not both");
        }
        if self.ca.is_some() && self.ca_contents.is_some() {
            return invalid("set either NATS_CA or NATS_CA_CONTENTS, not both");
        }
        if self.insecure && (self.ca.is_some() || self.ca_contents.is_some()) {
            return invalid(
                "NATS_INSECURE disables TLS, but a CA is configured; unset one of them",
            );
        }
        Ok(())
    }

    /// The address with the default port added when missing.
    pub fn address(&self) -> String {
        let host = self.host.trim();
        let host = host
            .strip_prefix("nats://")
            .or_else(|| host.strip_prefix("tls://"))
            .unwrap_or(host);
        let has_port = match host.rsplit_once(':') {
            // `[::1]:4222` or `name:4222`; a bare IPv6 address has colons but no brackets.
            Some((h, p)) => p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')),
            None => false,
        };
        if has_port {
            host.to_owned()
        } else if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:4222")
        } else {
            format!("{host}:4222")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added() {
        assert_eq!(NatsSettings::insecure("1.2.3.4").address(), "1.2.3.4:4222");
        assert_eq!(
            NatsSettings::insecure("nats.example.com:5222").address(),
            "nats.example.com:5222"
        );
        assert_eq!(NatsSettings::insecure("nats://h:1").address(), "h:1");
        assert_eq!(NatsSettings::insecure("::1").address(), "[::1]:4222");
        assert_eq!(NatsSettings::insecure("[::1]:4333").address(), "[::1]:4333");
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let mut s = NatsSettings::insecure("h");
        s.password = Some(Secret::new("p"));
        assert!(matches!(s.validate(), Err(NatsError::InvalidSettings(_))));
        let mut s = NatsSettings::insecure("h");
        s.ca_contents = Some(Secret::new("pem"));
        assert!(s.validate().is_err());
    }

    #[test]
    fn debug_output_hides_password_and_ca_text() {
        let mut s = NatsSettings::insecure("h");
        s.user = Some("u".into());
        s.password = Some(Secret::new("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
