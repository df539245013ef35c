//! TLS configuration for NATS from a CA file or PEM text.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::error::NatsError;

/// Installs the aws-lc-rs crypto provider as the process default, once.
///
/// Both `ring` and `aws-lc-rs` end up in a Bevygap build; rustls refuses to pick one and panics in
/// `ClientConfig::builder()` unless a default is installed. Call this at start-up, before any TLS.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client config trusting only the CA certificates in `pem` (from `source_name`).
/// Rewrites PEM blocks with their line breaks restored: Edgegap's start arguments carry the CA as
/// one line (`--ca_contents '-----BEGIN CERTIFICATE-----MIIB…-----END CERTIFICATE-----'`), or with
/// spaces for newlines. Text without PEM blocks is returned unchanged.
pub fn normalize_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body = &after[label_end + 5..];
        let footer = format!("-----END {label}-----");
        let Some(end) = body.find(&footer) else {
            break;
        };
        let base64: Vec<u8> = body[..end]
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for line in base64.chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&footer);
        out.push('\n');
        rest = &body[end + footer.len()..];
    }
    if out.is_empty() { text.to_owned() } else { out }
}

pub(crate) fn client_config_for_ca(
    pem: &[u8],
    source_name: &str,
) -> Result<ClientConfig, NatsError> {
    let invalid = |reason: String| NatsError::InvalidCa {
        source_name: source_name.to_owned(),
        reason,
    };
    let pem = normalize_pem(&String::from_utf8_lossy(pem));
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("holds no certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::normalize_pem;

    #[test]
    fn one_line_pem_gets_its_line_breaks_back() {
        let body = "A".repeat(100);
        let one_line = format!("-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----");
        let fixed = normalize_pem(&one_line);
        let lines: Vec<&str> = fixed.lines().collect();
        assert_eq!(
            lines,
            [
                "-----BEGIN CERTIFICATE-----",
                &"A".repeat(64),
                &"A".repeat(36),
                "-----END CERTIFICATE-----"
            ]
        );
        assert_eq!(normalize_pem(&fixed), fixed, "proper PEM stays as it is");
        assert_eq!(normalize_pem("not pem"), "not pem");
    }
}
