//! The rustls client of the `tls` transport: which roots verify the server,
//! the name sent as SNI and checked against its certificate, and the
//! optional client certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::{SyslogConfig, SyslogConfigError, split_host_port};

/// Builds the client configuration and the server name to connect with.
pub fn client_config(
    config: &SyslogConfig,
) -> Result<(Arc<ClientConfig>, ServerName<'static>), SyslogConfigError> {
    let tls = &config.tls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| SyslogConfigError::Tls(err.to_string()))?;

    let builder = if tls.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(tls.ca_file.as_deref())?)
    };

    let client = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file, "client_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| {
                SyslogConfigError::InvalidPemFile {
                    file_key: "client_key_file",
                    path: key_file.clone(),
                    reason: err.to_string(),
                }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| SyslogConfigError::Tls(err.to_string()))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(SyslogConfigError::IncompleteClientAuth),
    };

    let name = match &tls.server_name {
        Some(name) => name.clone(),
        None => split_host_port(&config.address)?.0,
    };
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| SyslogConfigError::InvalidServerName(name))?;
    Ok((Arc::new(client), server_name))
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, SyslogConfigError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = ca_file {
        for certificate in read_certificates(path, "ca_file")? {
            store
                .add(certificate)
                .map_err(|err| SyslogConfigError::InvalidPemFile {
                    file_key: "ca_file",
                    path: path.to_owned(),
                    reason: err.to_string(),
                })?;
        }
        return Ok(store);
    }
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(cause = %error, "failed to read a system CA certificate");
    }
    let (added, _ignored) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        return Err(SyslogConfigError::NoSystemRoots);
    }
    Ok(store)
}

fn read_certificates(
    path: &Path,
    file_key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, SyslogConfigError> {
    let invalid = |reason: String| SyslogConfigError::InvalidPemFile {
        file_key,
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| invalid(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(err.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("no certificate found".to_owned()));
    }
    Ok(certificates)
}

/// Verifier behind `danger_accept_invalid_certs`: it skips the certificate
/// and name checks but still verifies the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
