//! The SHA-256 digest of a WebTransport certificate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ProtocolError;

/// A SHA-256 certificate digest, stored as 64 lowercase hex characters without colons (what
/// lightyear's WebTransport client expects). Parsing also accepts the colon-separated, any-case form
/// that browsers and `openssl` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertDigest([u8; 32]);

impl CertDigest {
    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Colon-separated lowercase hex (`ab:cd:...`), as browsers show it.
    pub fn to_colon_hex(&self) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Display for CertDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for CertDigest {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s.chars().filter(|c| *c != ':').collect();
        let invalid = |reason: String| ProtocolError::InvalidField {
            field: "cert_digest",
            reason,
        };
        let bytes =
            hex::decode(compact.to_ascii_lowercase()).map_err(|e| invalid(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| invalid(format!("{} bytes, a SHA-256 digest has 32", b.len())))?;
        Ok(Self(bytes))
    }
}

impl Serialize for CertDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CertDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::CertDigest;

    #[test]
    fn colon_and_plain_hex_parse_to_the_same_digest() {
        let plain = "e3764d866c11d196".repeat(4);
        let colon = plain
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        let a: CertDigest = plain.parse().unwrap();
        let b: CertDigest = colon.parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), plain);
        assert_eq!(a.to_colon_hex().to_ascii_uppercase(), colon);
    }

    #[test]
    fn wrong_length_or_non_hex_is_a_typed_error() {
        assert!("abcd".parse::<CertDigest>().is_err());
        assert!("zz".repeat(32).parse::<CertDigest>().is_err());
    }
}
