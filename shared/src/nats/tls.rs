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
pub(crate) fn client_config_for_ca(
    pem: &[u8],
    source_name: &str,
) -> Result<ClientConfig, NatsError> {
    let invalid = |reason: String| NatsError::InvalidCa {
        source_name: source_name.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
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
