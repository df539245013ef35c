//! What Edgegap deployments inherit: the matchmaker's NATS settings and token key, as
//! environment variables that Edgegap keeps hidden when they are secrets.

use tracing::warn;

use super::api::EnvVar;

/// Edgegap refuses environment values longer than this.
pub const MAX_VALUE_BYTES: usize = 255;

/// Variables never shown in Edgegap's dashboard or API answers.
const SECRETS: [&str; 2] = ["NATS_PASSWORD", "LIGHTYEAR_PRIVATE_KEY"];

/// Variables that name files on the matchmaker's machine, meaningless inside a deployment.
const LOCAL_PATHS: [&str; 3] = ["NATS_CA", "NATS_CREDS", "LIGHTYEAR_PRIVATE_KEY_FILE"];

/// The deployment environment for `pairs`: secrets hidden, local file paths dropped, and values
/// over Edgegap's 255-byte limit dropped with a warning saying what to do instead.
pub fn deployment_env(pairs: &[(String, String)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .filter(|(key, _)| !LOCAL_PATHS.contains(&key.as_str()))
        .filter(|(key, value)| {
            let fits = value.len() <= MAX_VALUE_BYTES;
            if !fits {
                warn!(
                    "{key} is {} bytes, over Edgegap's {MAX_VALUE_BYTES}-byte limit: not passed to deployments; for NATS_CA_CONTENTS run `bevygap_edgegap set-ca-argument` so servers get it as --ca_contents",
                    value.len()
                );
            }
            fits
        })
        .map(|(key, value)| EnvVar {
            key: key.clone(),
            value: value.clone(),
            is_hidden: SECRETS.contains(&key.as_str()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_paths_and_long_values_are_dropped() {
        let pairs = [
            ("NATS_HOST", "nats.example.com:4222".to_owned()),
            ("NATS_PASSWORD", "hunter2".to_owned()),
            ("LIGHTYEAR_PRIVATE_KEY", "ab".repeat(32)),
            ("NATS_CA", "/etc/ca.pem".to_owned()),
            ("NATS_CA_CONTENTS", "x".repeat(1200)),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let env = deployment_env(&pairs);
        let keys: Vec<&str> = env.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            ["NATS_HOST", "NATS_PASSWORD", "LIGHTYEAR_PRIVATE_KEY"]
        );
        assert!(!env[0].is_hidden);
        assert!(env[1].is_hidden && env[2].is_hidden);
        assert!(!format!("{env:?}").contains("hunter2"));
    }
}
