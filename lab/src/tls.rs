//! TLS for the lab's Infinispan (`--tls`): a CA and a server certificate for
//! 127.0.0.1/localhost made at start (rcgen), the CA written next to env.yaml so that
//! clients verify against it (`infinispan.tls.ca_file`), served with rustls.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
pub use tokio_rustls::TlsAcceptor;

use crate::LabError;

/// A CA (PEM, for clients) and a TLS acceptor with a certificate it signed.
pub struct LabTls {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
    /// The server certificate and its key (PEM), for servers the lab runs as programs
    /// (PGO's PostgreSQL).
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for LabTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LabTls")
    }
}

fn tls_err(e: impl std::fmt::Display) -> LabError {
    LabError::Tls(e.to_string())
}

/// Make the CA and the server certificate.
///
/// # Errors
/// Key generation or signing fails.
pub fn generate() -> Result<LabTls, LabError> {
    let ca_key = KeyPair::generate().map_err(tls_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "runbook lab CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(tls_err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(tls_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "infinispan.lab");
    let cert = params.signed_by(&key, &issuer).map_err(tls_err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(tls_err)?;
    Ok(LabTls {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Serve `router` over TLS on a free port of 127.0.0.1.
///
/// # Errors
/// The port cannot be bound.
pub async fn serve(
    router: Router,
    acceptor: TlsAcceptor,
) -> Result<(SocketAddr, JoinHandle<()>), LabError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(LabError::Bind)?;
    let addr = listener.local_addr().map_err(LabError::Bind)?;
    let task = tokio::spawn(serve_on(listener, router, acceptor));
    Ok((addr, task))
}

/// Serve `router` over TLS on a bound listener, until the task is dropped.
pub async fn serve_on(listener: TcpListener, router: Router, acceptor: TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

/// A TLS acceptor from a certificate chain and its key, both PEM (`runbook respond
/// --tls-cert --tls-key`).
///
/// # Errors
/// No certificate or key in the PEM, or rustls refuses them.
pub fn acceptor_from_pem(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, LabError> {
    use rustls::pki_types::pem::PemObject;
    let tls_err = |e: String| LabError::Tls(e);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("the certificate: {e}")))?;
    if chain.is_empty() {
        return Err(tls_err("the certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| tls_err(format!("the key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
