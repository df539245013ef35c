//! Who may ask for a seat: an optional check of a signed player token before a ticket exists.
//!
//! A game that has its own backend (accounts, bans, entitlements) lets only its players ask for a
//! seat: the backend signs a short-lived JWT for the player, the client passes it along
//! (`BevygapClientConfig::player_token`, or `"player_token"` in the seed JSON request), and the
//! matchmaker verifies signature, expiry and audience (and the issuer when configured) before it
//! creates a ticket. A refused request is answered 401 ([`ErrorCode::Unauthorized`]) with what was
//! wrong, and counted (`players_refused` in the inspection summary). Without a configured check
//! every request is served, as before.
//!
//! Keys: a shared secret (HS256), or the backend's public key as PEM (RS256, ES256 or EdDSA).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bevy::prelude::*;
use bevygap_shared::protocol::ErrorCode;
use bevygap_shared::secret::Secret;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::ConfigError;

/// The key player tokens are signed with.
#[derive(Clone, Debug)]
pub enum PlayerKey {
    /// HS256 with a secret shared with the game's backend.
    SharedSecret(Secret),
    /// The backend's public key, PEM, for `algorithm` (RS256, ES256 or EdDSA).
    PublicKey {
        /// The signature algorithm.
        algorithm: PlayerKeyAlgorithm,
        /// The PEM text.
        pem: String,
    },
}

/// Public-key algorithms a player token may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlayerKeyAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    Eddsa,
}

/// How player tokens are checked.
#[derive(Clone, Debug)]
pub struct PlayerCheckConfig {
    /// The verification key.
    pub key: PlayerKey,
    /// The `aud` a token must name (the game, as the backend calls it).
    pub audience: String,
    /// The `iss` a token must name, if set.
    pub issuer: Option<String>,
}

/// Why a player's request was refused. The player (or whoever sent the token) is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlayerRefused {
    /// No token was sent.
    #[error("this game needs a player token from its backend; none was sent")]
    Missing,
    /// The token has expired.
    #[error("the player token has expired; get a fresh one from the game's backend")]
    Expired,
    /// The token is for another audience.
    #[error("the player token is not for this game (audience)")]
    WrongAudience,
    /// The token is from another issuer.
    #[error("the player token is from another issuer")]
    WrongIssuer,
    /// The signature does not verify with the configured key.
    #[error("the player token's signature is not valid")]
    BadSignature,
    /// Not a token this matchmaker can read.
    #[error("the player token is malformed: {0}")]
    Malformed(String),
}

impl PlayerRefused {
    /// The code clients get: 401.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Unauthorized
    }
}

/// What a verified token says about the player (claims Bevygap reads; others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct PlayerClaims {
    /// The player's id in the game's backend.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Checks player tokens; shared by both intakes. Cloning shares the refusal count.
#[derive(Clone, Resource)]
pub struct PlayerCheck {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for PlayerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerCheck")
            .field("algorithms", &self.validation.algorithms)
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

impl PlayerCheck {
    /// Builds the check; a key that cannot be read is a configuration error.
    pub fn new(config: &PlayerCheckConfig) -> Result<Self, ConfigError> {
        let bad_key = |e: jsonwebtoken::errors::Error| {
            ConfigError::invalid(
                "player-token-public-key-file",
                format!("not a usable PEM public key: {e}"),
            )
        };
        let (key, algorithm) = match &config.key {
            PlayerKey::SharedSecret(secret) => {
                if secret.expose().len() < 32 {
                    return Err(ConfigError::invalid(
                        "player-token-secret-file",
                        "the shared secret needs at least 32 bytes",
                    ));
                }
                (
                    DecodingKey::from_secret(secret.expose().as_bytes()),
                    Algorithm::HS256,
                )
            }
            PlayerKey::PublicKey { algorithm, pem } => match algorithm {
                PlayerKeyAlgorithm::Rs256 => (
                    DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(bad_key)?,
                    Algorithm::RS256,
                ),
                PlayerKeyAlgorithm::Es256 => (
                    DecodingKey::from_ec_pem(pem.as_bytes()).map_err(bad_key)?,
                    Algorithm::ES256,
                ),
                PlayerKeyAlgorithm::Eddsa => (
                    DecodingKey::from_ed_pem(pem.as_bytes()).map_err(bad_key)?,
                    Algorithm::EdDSA,
                ),
            },
        };
        if config.audience.trim().is_empty() {
            return Err(ConfigError::invalid(
                "player-token-audience",
                "name the audience player tokens are issued for",
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 5;
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer.as_str()]);
        }
        Ok(Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
            refused: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Verifies a request's token; a refusal is counted.
    pub fn verify(&self, token: Option<&str>) -> Result<PlayerClaims, PlayerRefused> {
        let result = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Err(PlayerRefused::Missing),
            Some(token) if token.len() > 8 * 1024 => {
                Err(PlayerRefused::Malformed("longer than 8 KiB".into()))
            }
            Some(token) => jsonwebtoken::decode::<PlayerClaims>(token, &self.key, &self.validation)
                .map(|data| data.claims)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => PlayerRefused::Expired,
                    ErrorKind::InvalidAudience => PlayerRefused::WrongAudience,
                    ErrorKind::InvalidIssuer => PlayerRefused::WrongIssuer,
                    ErrorKind::InvalidSignature => PlayerRefused::BadSignature,
                    _ => PlayerRefused::Malformed(e.to_string()),
                }),
        };
        if result.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

    fn check() -> PlayerCheck {
        PlayerCheck::new(&PlayerCheckConfig {
            key: PlayerKey::SharedSecret(Secret::new(SECRET)),
            audience: "spaceships".into(),
            issuer: Some("https://accounts.example".into()),
        })
        .unwrap()
    }

    fn token(aud: &str, iss: &str, exp_in: i64, secret: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims =
            serde_json::json!({ "sub": "player-7", "aud": aud, "iss": iss, "exp": now + exp_in });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn a_token_from_the_backend_for_this_game_passes() {
        let claims = check()
            .verify(Some(&token(
                "spaceships",
                "https://accounts.example",
                60,
                SECRET,
            )))
            .unwrap();
        assert_eq!(claims.sub.as_deref(), Some("player-7"));
    }

    #[test]
    fn every_kind_of_bad_token_is_refused_with_its_reason_and_counted() {
        let check = check();
        let iss = "https://accounts.example";
        let cases = [
            (None, PlayerRefused::Missing),
            (
                Some(token("spaceships", iss, -60, SECRET)),
                PlayerRefused::Expired,
            ),
            (
                Some(token("other-game", iss, 60, SECRET)),
                PlayerRefused::WrongAudience,
            ),
            (
                Some(token("spaceships", "https://evil.example", 60, SECRET)),
                PlayerRefused::WrongIssuer,
            ),
            (
                Some(token(
                    "spaceships",
                    iss,
                    60,
                    "another-secret-of-at-least-32-bytes",
                )),
                PlayerRefused::BadSignature,
            ),
        ];
        for (token, expected) in &cases {
            assert_eq!(check.verify(token.as_deref()).unwrap_err(), *expected);
        }
        assert!(matches!(
            check.verify(Some("not.a.jwt")),
            Err(PlayerRefused::Malformed(_))
        ));
        assert_eq!(check.refused(), cases.len() as u64 + 1);
    }

    #[test]
    fn a_short_secret_or_an_empty_audience_is_refused_at_start() {
        let short = PlayerCheck::new(&PlayerCheckConfig {
            key: PlayerKey::SharedSecret(Secret::new("short")),
            audience: "spaceships".into(),
            issuer: None,
        });
        assert!(short.unwrap_err().to_string().contains("32 bytes"));
        let no_audience = PlayerCheck::new(&PlayerCheckConfig {
            key: PlayerKey::SharedSecret(Secret::new(SECRET)),
            audience: " ".into(),
            issuer: None,
        });
        assert!(no_audience.is_err());
    }
}
