//! Start-up checks of the Edgegap app and versions, with what to do when one is wrong.

use thiserror::Error;

use super::api::VersionInfo;
use super::client::EdgegapClient;
use super::error::EdgegapError;

/// Why the app or a version cannot serve players.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The key was refused.
    #[error(
        "Edgegap refused the API key: set EDGEGAP_API_KEY to a key from the dashboard (User settings → Tokens)"
    )]
    Unauthorized,
    /// No such application.
    #[error(
        "Edgegap has no application `{app}`: create it in the dashboard, or pass its exact name with --app-name"
    )]
    NoApp {
        /// The application name.
        app: String,
    },
    /// The application is disabled.
    #[error("Edgegap application `{app}` is disabled: enable it in the dashboard")]
    AppInactive {
        /// The application name.
        app: String,
    },
    /// No such version.
    #[error(
        "Edgegap application `{app}` has no version `{version}`: create it, or fix --app-version"
    )]
    NoVersion {
        /// The application name.
        app: String,
        /// The version name.
        version: String,
    },
    /// The version is disabled.
    #[error(
        "version `{version}` of Edgegap application `{app}` is disabled: enable it in the dashboard"
    )]
    VersionInactive {
        /// The application name.
        app: String,
        /// The version name.
        version: String,
    },
    /// The version has no port for players.
    #[error(
        "version `{version}` of `{app}` exposes no port: add the game server's port (UDP, or UDP+TCP for WebTransport)"
    )]
    NoPorts {
        /// The application name.
        app: String,
        /// The version name.
        version: String,
    },
    /// The API could not answer (outage, network); the check could not run.
    #[error("could not check the Edgegap app: {0}")]
    Api(EdgegapError),
}

impl CheckError {
    /// Whether the matchmaker may still start (the API was unreachable, not wrong).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Api(error) if error.is_retryable())
    }
}

fn classify(error: EdgegapError, missing: impl FnOnce() -> CheckError) -> CheckError {
    match error {
        EdgegapError::Unauthorized { .. } => CheckError::Unauthorized,
        EdgegapError::NotFound(_) => missing(),
        other => CheckError::Api(other),
    }
}

/// Checks that `app` exists and is active, and that every version exists, is active and exposes a
/// port. Returns the versions as Edgegap describes them.
pub async fn check_app(
    client: &EdgegapClient,
    app: &str,
    versions: &[String],
) -> Result<Vec<VersionInfo>, CheckError> {
    let info = client.app(app).await.map_err(|e| {
        classify(e, || CheckError::NoApp {
            app: app.to_owned(),
        })
    })?;
    if !info.is_active {
        return Err(CheckError::AppInactive {
            app: app.to_owned(),
        });
    }
    let mut found = Vec::with_capacity(versions.len());
    for version in versions {
        let info = client.app_version(app, version).await.map_err(|e| {
            classify(e, || CheckError::NoVersion {
                app: app.to_owned(),
                version: version.clone(),
            })
        })?;
        if !info.is_active {
            return Err(CheckError::VersionInactive {
                app: app.to_owned(),
                version: version.clone(),
            });
        }
        if info.ports.is_empty() {
            return Err(CheckError::NoPorts {
                app: app.to_owned(),
                version: version.clone(),
            });
        }
        found.push(info);
    }
    Ok(found)
}
