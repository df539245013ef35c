//! The 256 bytes of user data inside a netcode connect token.
//!
//! The user data sits in the token's encrypted, authenticated private part: only a holder of the
//! private key can write it, so a game server can trust it. Bevygap stores which deployment and
//! reservation the token was minted for, and when the reservation expires.
//!
//! Layout: byte 0 is the format (1); then the deployment id and the reservation id, each as one
//! length byte and that many bytes; then the expiry as 8 bytes little-endian Unix milliseconds;
//! then, for a player placed by a matchmaking queue, a byte 1 and the team as 4 bytes
//! little-endian; the rest is zero (a token of the seat flow has no team).

use crate::error::ProtocolError;
use crate::time::UnixMillis;

/// Size of netcode user data.
pub const USER_DATA_BYTES: usize = 256;

const FORMAT: u8 = 1;

/// What a Bevygap connect token says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUserData {
    /// The deployment the token is valid for.
    pub deployment_id: String,
    /// The reservation it was issued under.
    pub reservation_id: String,
    /// When the reservation expires.
    pub expires_at_ms: UnixMillis,
    /// The team of a player placed by a matchmaking queue.
    pub team: Option<u32>,
}

impl TokenUserData {
    /// Encodes into the fixed-size user data. Ids longer than 64 bytes are refused.
    pub fn encode(&self) -> Result<[u8; USER_DATA_BYTES], ProtocolError> {
        let mut out = [0u8; USER_DATA_BYTES];
        out[0] = FORMAT;
        let mut at = 1;
        for (field, value) in [
            ("deployment_id", &self.deployment_id),
            ("reservation_id", &self.reservation_id),
        ] {
            let bytes = value.as_bytes();
            if bytes.is_empty() || bytes.len() > 64 {
                return Err(ProtocolError::InvalidField {
                    field,
                    reason: format!("{} bytes, 1 to 64 allowed", bytes.len()),
                });
            }
            out[at] = bytes.len() as u8;
            out[at + 1..at + 1 + bytes.len()].copy_from_slice(bytes);
            at += 1 + bytes.len();
        }
        out[at..at + 8].copy_from_slice(&self.expires_at_ms.to_le_bytes());
        if let Some(team) = self.team {
            out[at + 8] = 1;
            out[at + 9..at + 13].copy_from_slice(&team.to_le_bytes());
        }
        Ok(out)
    }

    /// Decodes user data written by [`TokenUserData::encode`].
    pub fn decode(data: &[u8; USER_DATA_BYTES]) -> Result<Self, ProtocolError> {
        let malformed = |what: &str| ProtocolError::Malformed(format!("token user data: {what}"));
        if data[0] != FORMAT {
            return Err(malformed(&format!("format {} is not {FORMAT}", data[0])));
        }
        let mut at = 1;
        let mut fields = Vec::with_capacity(2);
        for _ in 0..2 {
            let len = usize::from(data[at]);
            if len == 0 || len > 64 {
                return Err(malformed("bad id length"));
            }
            let text = std::str::from_utf8(&data[at + 1..at + 1 + len])
                .map_err(|_| malformed("id is not UTF-8"))?;
            fields.push(text.to_owned());
            at += 1 + len;
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&data[at..at + 8]);
        let team = match data[at + 8] {
            0 => None,
            1 => {
                let mut team = [0u8; 4];
                team.copy_from_slice(&data[at + 9..at + 13]);
                Some(u32::from_le_bytes(team))
            }
            other => return Err(malformed(&format!("team marker {other}"))),
        };
        let reservation_id = fields.pop().unwrap_or_default();
        let deployment_id = fields.pop().unwrap_or_default();
        Ok(Self {
            deployment_id,
            reservation_id,
            expires_at_ms: u64::from_le_bytes(expiry),
            team,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let data = TokenUserData {
            deployment_id: "local-1".into(),
            reservation_id: "r".repeat(64),
            expires_at_ms: 1_700_000_000_123,
            team: None,
        };
        assert_eq!(
            TokenUserData::decode(&data.encode().unwrap()).unwrap(),
            data
        );
        let teamed = TokenUserData {
            team: Some(3),
            ..data
        };
        assert_eq!(
            TokenUserData::decode(&teamed.encode().unwrap()).unwrap(),
            teamed
        );
    }

    #[test]
    fn foreign_user_data_is_a_typed_error() {
        assert!(TokenUserData::decode(&[0; USER_DATA_BYTES]).is_err());
        let mut bad = [0; USER_DATA_BYTES];
        bad[0] = FORMAT;
        bad[1] = 200;
        assert!(TokenUserData::decode(&bad).is_err());
        let long = TokenUserData {
            deployment_id: "x".repeat(65),
            reservation_id: "r".into(),
            expires_at_ms: 0,
            team: None,
        };
        assert!(long.encode().is_err());
        let mut bad_team = TokenUserData {
            deployment_id: "d".into(),
            reservation_id: "r".into(),
            expires_at_ms: 0,
            team: None,
        }
        .encode()
        .unwrap();
        bad_team[1 + 2 + 2 + 8] = 7;
        assert!(TokenUserData::decode(&bad_team).is_err());
    }
}
