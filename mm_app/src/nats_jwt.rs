//! NATS JWTs: the `ed25519-nkey` tokens nats-server sends to an auth callout and expects back.
//!
//! A token is `header.claims.signature`, each part base64url without padding; the header is
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, the signature is the issuer nkey's ed25519 signature of
//! `header.claims`, and `jti` is the base32 SHA-512/256 of the claims without `jti` (so equal
//! claims give equal ids). The claims are kept as JSON values: Bevygap reads a few fields of the
//! server's request and writes the two tokens it answers with.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512_256};

/// The header every NATS JWT of version 2 carries.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Why a token was not accepted. Tokens come from nats-server, so every kind is the peer's fault
/// or an attack; none is a bug of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("not a NATS JWT: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm.
    #[error("unsupported JWT algorithm (expected ed25519-nkey)")]
    Algorithm,
    /// The issuer is not a public nkey of the expected kind.
    #[error("JWT issuer `{0}` is not a valid public nkey of the expected kind")]
    Issuer(String),
    /// The signature does not match the issuer.
    #[error("JWT signature does not match its issuer")]
    Signature,
}

/// Signs `claims` (an object) as `issuer`: sets `iss`, `iat` and `jti`.
pub fn encode(mut claims: Map<String, Value>, issuer: &KeyPair, now_secs: u64) -> String {
    claims.insert("iss".into(), json!(issuer.public_key()));
    claims.insert("iat".into(), json!(now_secs));
    claims.remove("jti");
    let id = Sha512_256::digest(Value::Object(claims.clone()).to_string().as_bytes());
    claims.insert("jti".into(), json!(data_encoding::BASE32_NOPAD.encode(&id)));
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
    );
    // Signing with a key pair made from a seed cannot fail.
    let signature = issuer.sign(signing_input.as_bytes()).unwrap_or_default();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Checks the signature of `token` against its own issuer, which must start with
/// `issuer_prefix` (`'N'` for a server, `'A'` for an account), and returns its claims.
pub fn decode_verified(token: &str, issuer_prefix: char) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three parts"));
    };
    let part = |text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| JwtError::Malformed("a part is not base64url"))
    };
    let header: Value = serde_json::from_slice(&part(header)?)
        .map_err(|_| JwtError::Malformed("the header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("ed25519-nkey") {
        return Err(JwtError::Algorithm);
    }
    let Value::Object(map) = serde_json::from_slice(&part(claims)?)
        .map_err(|_| JwtError::Malformed("the claims are not JSON"))?
    else {
        return Err(JwtError::Malformed("the claims are not an object"));
    };
    let issuer = map.get("iss").and_then(Value::as_str).unwrap_or_default();
    if !issuer.starts_with(issuer_prefix) {
        return Err(JwtError::Issuer(issuer.chars().take(60).collect()));
    }
    let key = KeyPair::from_public_key(issuer)
        .map_err(|_| JwtError::Issuer(issuer.chars().take(60).collect()))?;
    let signed = token
        .trim()
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or_default();
    key.verify(signed.as_bytes(), &part(signature)?)
        .map_err(|_| JwtError::Signature)?;
    Ok(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_signed_token_verifies_and_keeps_its_claims() {
        let account = KeyPair::new_account();
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("UABC"));
        let token = encode(claims, &account, 1_700_000_000);
        let read = decode_verified(&token, 'A').unwrap();
        assert_eq!(read["sub"], "UABC");
        assert_eq!(read["iss"], account.public_key());
        assert_eq!(read["iat"], 1_700_000_000);
        assert_eq!(read["jti"].as_str().unwrap().len(), 52);
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let account = KeyPair::new_account();
        let token = encode(Map::new(), &account, 1);
        assert_eq!(
            decode_verified(&token, 'N'),
            Err(JwtError::Issuer(account.public_key()))
        );
        let (signed, _) = token.rsplit_once('.').unwrap();
        let other = KeyPair::new_account().sign(signed.as_bytes()).unwrap();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(other));
        assert_eq!(decode_verified(&forged, 'A'), Err(JwtError::Signature));
        assert!(matches!(
            decode_verified("a.b", 'A'),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            decode_verified("!.!.!", 'A'),
            Err(JwtError::Malformed(_))
        ));
    }
}
