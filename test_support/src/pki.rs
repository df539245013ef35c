//! A throwaway certificate authority for TLS tests.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::{HarnessError, TlsFiles};

/// A CA and a server certificate for `127.0.0.1`/`localhost` signed by it.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server's certificate and key files.
    pub server: TlsFiles,
}

fn pki_error(error: rcgen::Error) -> HarnessError {
    HarnessError::StartFailed(format!("test certificates: {error}"))
}

/// Creates a CA and a server certificate, writing the server's files to `dir` as `{name}-*.pem`.
pub fn make_pki(dir: &Path, name: &str) -> Result<TestPki, HarnessError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(pki_error)?)
        .map_err(pki_error)?;
    let server_key = KeyPair::generate().map_err(pki_error)?;
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(pki_error)?
        .signed_by(&server_key, &ca)
        .map_err(pki_error)?;
    let cert = dir.join(format!("{name}-server.pem"));
    let key = dir.join(format!("{name}-server-key.pem"));
    std::fs::write(&cert, server_cert.pem())?;
    std::fs::write(&key, server_key.serialize_pem())?;
    Ok(TestPki {
        ca_pem: ca.pem(),
        server: TlsFiles { cert, key },
    })
}
