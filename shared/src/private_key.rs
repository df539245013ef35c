//! The lightyear netcode private key shared by the matchmaker and game servers: parsed from hex,
//! the seed's comma list, or a file.

use std::fmt;
use std::path::Path;

/// The key is missing, malformed or a placeholder. The message never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// A 32-byte netcode private key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey([u8; 32]);

impl PrivateKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes, for minting tokens. Never log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether every byte is zero (a placeholder, never a real key).
    pub fn is_all_zero(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// Parses 64 hex characters, or the seed's 32 comma-separated decimal bytes
    /// (`1, 2, 3, ...`).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes: Vec<u8> = if text.contains(',') {
            text.split(',')
                .map(|part| part.trim().parse::<u8>())
                .collect::<Result<_, _>>()
                .map_err(|_| KeyError("a comma list must hold 32 numbers from 0 to 255".into()))?
        } else {
            hex::decode(text).map_err(|_| {
                KeyError("expected 64 hex characters or 32 comma-separated bytes".into())
            })?
        };
        let len = bytes.len();
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError(format!("{len} bytes, a netcode key has 32")))?;
        Ok(Self(bytes))
    }

    /// Reads and parses a key file (same formats as [`PrivateKey::parse`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Refuses an all-zero key unless `dev` is set.
    pub fn check_not_placeholder(self, dev: bool) -> Result<Self, KeyError> {
        if self.is_all_zero() && !dev {
            return Err(KeyError(
                "the key is all zeros; anyone could mint tokens for your servers. \
                 Generate one (e.g. `openssl rand -hex 32`) or pass --dev for local testing"
                    .into(),
            ));
        }
        Ok(self)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::PrivateKey;

    #[test]
    fn hex_and_seed_comma_list_parse_to_the_same_key() {
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes[31] = 255;
        let hex = hex::encode(bytes);
        let list = bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            PrivateKey::parse(&hex).unwrap(),
            PrivateKey::from_bytes(bytes)
        );
        assert_eq!(
            PrivateKey::parse(&list).unwrap(),
            PrivateKey::from_bytes(bytes)
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["", "abc", "1,2,3", "1,2,300", &"zz".repeat(32)] {
            let err = PrivateKey::parse(bad).unwrap_err();
            assert!(bad.len() < 4 || !err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn an_all_zero_key_is_refused_unless_dev() {
        let zero = PrivateKey::from_bytes([0; 32]);
        assert!(zero.clone().check_not_placeholder(false).is_err());
        assert!(zero.check_not_placeholder(true).is_ok());
        assert_eq!(
            format!("{:?}", PrivateKey::from_bytes([7; 32])),
            "PrivateKey(***)"
        );
    }
}
