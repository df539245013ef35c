//! The WebTransport certificate: self-signed, short-lived, published by its SHA-256 digest.
//!
//! Browsers accept a self-signed WebTransport certificate when the page passes its digest and the
//! certificate is ECDSA P-256 and valid for less than 14 days. The server makes one at start-up and
//! puts the digest in its lease; the matchmaker hands it to clients with their token.

use std::time::Duration;

use bevygap_shared::schema::CertDigest;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Longest validity browsers accept for a certificate pinned by digest.
pub const MAX_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);

/// A generated certificate with its key and digest.
#[derive(Clone)]
pub struct WebTransportCert {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER. Never log it.
    pub key_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM. Never log it.
    pub key_pem: String,
    /// SHA-256 of the DER certificate.
    pub digest: CertDigest,
}

impl std::fmt::Debug for WebTransportCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportCert")
            .field("digest", &self.digest.to_string())
            .finish_non_exhaustive()
    }
}

/// The certificate could not be made.
#[derive(Debug, Error)]
#[error("could not generate the WebTransport certificate: {0}")]
pub struct CertError(String);

impl WebTransportCert {
    /// Makes an ECDSA P-256 certificate for `names` (IPs or host names), valid from a minute ago
    /// for `validity` (capped just under [`MAX_VALIDITY`]).
    pub fn generate(names: &[String], validity: Duration) -> Result<Self, CertError> {
        let err = |e: rcgen::Error| CertError(e.to_string());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(err)?;
        params.distinguished_name = DistinguishedName::new();
        let now = time::OffsetDateTime::now_utc();
        let validity = validity.min(MAX_VALIDITY - Duration::from_secs(3600));
        params.not_before = now - time::Duration::minutes(1);
        params.not_after =
            now + time::Duration::seconds(i64::try_from(validity.as_secs()).unwrap_or(0));
        let cert = params.self_signed(&key).map_err(err)?;
        let cert_der = cert.der().to_vec();
        let digest: [u8; 32] = Sha256::digest(&cert_der).into();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            cert_der,
            digest: CertDigest::from_bytes(digest),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_p256_short_lived_and_its_digest_is_sha256_of_der() {
        let cert =
            WebTransportCert::generate(&["127.0.0.1".into(), "localhost".into()], MAX_VALIDITY * 2)
                .unwrap();
        let expected: [u8; 32] = Sha256::digest(&cert.cert_der).into();
        assert_eq!(cert.digest.as_bytes(), &expected);
        assert_eq!(cert.digest.to_string().len(), 64);
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.cert_der).unwrap();
        let validity = parsed.validity();
        let secs = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert!(secs < 14 * 24 * 3600, "valid for {secs}s");
        assert_eq!(
            parsed.public_key().algorithm.algorithm.to_id_string(),
            "1.2.840.10045.2.1",
            "an EC key"
        );
        let sans = parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .len();
        assert_eq!(sans, 2);
        assert!(!format!("{cert:?}").contains("PRIVATE"));
    }
}
