//! Test certificates (rcgen) and rustls client/server configs for TLS tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

/// The crypto provider every test config uses (ring, as the workspace does).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// PEM of the certificate.
    pub cert_pem: String,
    /// PEM of the PKCS#8 private key.
    pub key_pem: String,
    /// DER of the certificate (compare with what a server presented).
    pub der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Ca {
    /// A new self-signed CA.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("strait test CA {name}"));
        let key = KeyPair::generate().expect("ca key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-sign ca"),
        }
    }

    /// PEM of the CA certificate.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// DER of the CA certificate.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `sans` (DNS names or IP literals) signed by this CA.
    pub fn leaf(&self, sans: &[&str]) -> Leaf {
        let params = leaf_params(sans);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf::new(cert, key)
    }

    /// A client certificate with common name `cn` and `uris` as URI SANs (SPIFFE IDs).
    pub fn client(&self, cn: &str, uris: &[&str]) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Strait Tests");
        params.subject_alt_names = uris
            .iter()
            .map(|u| rcgen::SanType::URI((*u).try_into().expect("ia5 uri")))
            .collect();
        self.sign(params)
    }

    /// A client certificate like [`Ca::client`] that expires at `not_after`.
    pub fn client_until(&self, cn: &str, uris: &[&str], not_after: std::time::SystemTime) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = uris
            .iter()
            .map(|u| rcgen::SanType::URI((*u).try_into().expect("ia5 uri")))
            .collect();
        params.not_after = not_after.into();
        self.sign(params)
    }

    /// A leaf for `sans` that expires at `not_after`.
    pub fn leaf_until(&self, sans: &[&str], not_after: std::time::SystemTime) -> Leaf {
        let mut params = leaf_params(sans);
        params.not_after = not_after.into();
        self.sign(params)
    }

    /// A leaf for `sans` with serial number `serial`, valid from `not_before` to `not_after`:
    /// the short-lived certificates SPIRE or cert-manager issue, each with a fresh key.
    pub fn leaf_valid(
        &self,
        sans: &[&str],
        serial: u64,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Leaf {
        let mut params = leaf_params(sans);
        params.serial_number = Some(serial.into());
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf::new(cert, key)
    }

    /// Write the CA PEM to `dir/name` and return the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).expect("write ca");
        p
    }
}

fn leaf_params(sans: &[&str]) -> CertificateParams {
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        sans.first().copied().unwrap_or("leaf"),
    );
    params
}

impl Leaf {
    fn new(cert: rcgen::Certificate, key: KeyPair) -> Leaf {
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// DER of the PKCS#8 private key (for clients that take keys as bytes: QUIC).
    pub fn key_der(&self) -> Vec<u8> {
        self.key_der.clone()
    }

    /// A self-signed leaf (trusted by nobody).
    pub fn self_signed(sans: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = leaf_params(sans).self_signed(&key).expect("self-sign");
        Leaf::new(cert, key)
    }

    /// Write `dir/STEM.pem` and `dir/STEM.key`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }

    /// A rustls server config presenting this cert that requires client certificates
    /// issued by `clients`.
    pub fn server_config_requiring_clients(
        &self,
        clients: &Ca,
        alpn: &[&[u8]],
    ) -> Arc<ServerConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(clients.der()).expect("client ca");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .expect("client verifier");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server cert");
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// A client config trusting `roots` that presents this certificate.
    pub fn client_config(&self, roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
        let mut store = RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).expect("add root");
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(store)
            .with_client_auth_cert(vec![self.der.clone()], key)
            .expect("client cert");
        Arc::new(cfg)
    }

    /// A rustls server config presenting this cert with the given ALPN list.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server cert");
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

/// A client config trusting `roots`, limited to `versions`, offering `alpn`.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).expect("add root");
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A client config that accepts any server certificate (to inspect which
/// certificate a server presents).
pub fn accept_any_client_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
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
