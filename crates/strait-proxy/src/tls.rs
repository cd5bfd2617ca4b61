//! TLS configuration: downstream server configs with SNI certificate choice and client certificate verification (mutual TLS), upstream client configs with client certificates.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
    DigitallySignedStruct, SignatureScheme,
};

mod expiry;
mod peer;

pub use expiry::{earliest_expiry, Expiry};
pub use peer::peer_cert;

/// Why a TLS configuration could not be built (file named, reason given).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls rejected the configuration.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Largest PEM file read (the configuration's `MAX_INPUT_FILE_BYTES`, checked again here because
/// a file can grow between validation and a reload).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The file's bytes, refusing one over [`MAX_PEM_BYTES`] without reading all of it.
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| file_err(path, e))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(file_err(
            path,
            format!("larger than {} KiB", MAX_PEM_BYTES / 1024),
        ));
    }
    Ok(bytes)
}

/// A certificate chain and its private key, read from PEM files.
type ChainAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load_chain_and_key(cert: &Path, key: &Path) -> Result<ChainAndKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read_pem(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, e))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem(key)?).map_err(|e| file_err(key, e))?;
    Ok((chain, key))
}

/// Loads a certificate chain and its key as a `CertifiedKey`.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = load_chain_and_key(cert, key)?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Rustls)
}

/// The CA certificates of a PEM bundle as trust anchors.
fn load_roots(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read_pem(ca)?) {
        roots
            .add(c.map_err(|e| file_err(ca, e))?)
            .map_err(|e| file_err(ca, e))?;
    }
    if roots.is_empty() {
        return Err(file_err(ca, "no CA certificate found"));
    }
    Ok(roots)
}

/// How a listener verifies client certificates (`tls.client_auth`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAuth<'a> {
    /// The CA bundle client certificates must chain to.
    pub ca: &'a Path,
    /// A client without a certificate fails the handshake (`require`); otherwise one is
    /// optional, but one presented must verify (`request`).
    pub required: bool,
}

/// What a downstream TLS configuration offers, besides its certificates.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions<'a> {
    /// Only TLS 1.3.
    pub tls13_only: bool,
    /// ALPN `h2`.
    pub alpn_h2: bool,
    /// ALPN `http/1.1`.
    pub alpn_h1: bool,
    /// Client certificates asked for and verified.
    pub client_auth: Option<ClientAuth<'a>>,
}

/// Chooses the certificate by SNI: exact name, then wildcard, then the first certificate.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return Some(k.clone());
            }
        }
        Some(self.default.clone())
    }
}

/// A downstream TLS configuration: certificates chosen by SNI, ALPN, minimum version.
pub fn server_config(
    pairs: &[(&Path, &Path)],
    opts: ServerOptions<'_>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for (cert, key) in pairs {
        let ck = Arc::new(load_certified_key(cert, key)?);
        let leaf = ck.end_entity_cert().map_err(TlsError::Rustls)?;
        let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| file_err(cert, e))?;
        for name in ee.valid_dns_names() {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.entry(parent.to_string()).or_insert(ck.clone()),
                None => exact.entry(name).or_insert(ck.clone()),
            };
        }
        default.get_or_insert(ck);
    }
    let default = default.ok_or_else(|| TlsError::File {
        path: String::new(),
        reason: "no certificate configured".into(),
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder =
        rustls::ServerConfig::builder_with_provider(provider()).with_protocol_versions(versions)?;
    let builder = match opts.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let roots = Arc::new(load_roots(auth.ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if auth.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| file_err(auth.ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(SniResolver {
        exact,
        wildcard,
        default,
    }));
    if opts.alpn_h2 {
        cfg.alpn_protocols.push(b"h2".to_vec());
    }
    if opts.alpn_h1 {
        cfg.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Ok(Arc::new(cfg))
}

/// An upstream TLS client configuration: webpki roots or a CA file, or no verification when
/// asked; a client certificate (`(cert, key)`) presented when the upstream asks for one.
pub fn client_config(
    ca: Option<&Path>,
    insecure_skip_verify: bool,
    client_cert: Option<(&Path, &Path)>,
    h2: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        let roots = match ca {
            Some(ca) => load_roots(ca)?,
            None => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                roots
            }
        };
        builder.with_root_certificates(roots)
    };
    let mut cfg = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key) = load_chain_and_key(cert, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    cfg.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate (`insecure_skip_verify`, for test setups with self-signed certs).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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
