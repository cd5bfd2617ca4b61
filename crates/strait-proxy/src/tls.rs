//! TLS configuration: downstream server configs with SNI certificate choice and client certificate verification (mutual TLS), upstream client configs with client certificates.

use std::{
    collections::HashMap,
    fmt,
    path::Path,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
    DigitallySignedStruct, SignatureScheme,
};

mod expiry;
mod ocsp;
mod peer;
mod pq;

pub use expiry::{earliest_expiry, Expiry};
pub use peer::{client_identity, Expired};
pub use pq::X25519MLKEM768;

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

/// Loads a certificate chain and its key as a `CertifiedKey`, with the OCSP response in
/// `ocsp` stapled when that file exists.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
    ocsp: Option<&Path>,
) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = load_chain_and_key(cert, key)?;
    let mut ck = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Rustls)?;
    if let Some(path) = ocsp {
        ck.ocsp = ocsp::load(path)?;
    }
    Ok(ck)
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

/// A certificate chain, its key and optionally a DER OCSP response to staple.
#[derive(Debug, Clone, Copy)]
pub struct CertFiles<'a> {
    /// The chain (PEM), leaf first.
    pub cert: &'a Path,
    /// The private key (PEM).
    pub key: &'a Path,
    /// A DER OCSP response for the leaf; stapled when the file exists.
    pub ocsp: Option<&'a Path>,
}

/// A key exchange group a listener may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// X25519 (RFC 7748).
    X25519,
    /// The post-quantum hybrid ML-KEM-768 + X25519 (TLS 1.3 only).
    X25519MlKem768,
    /// NIST P-256.
    Secp256r1,
    /// NIST P-384.
    Secp384r1,
}

impl Group {
    fn kx(self) -> &'static dyn rustls::crypto::SupportedKxGroup {
        use rustls::crypto::ring::kx_group;
        match self {
            Group::X25519 => kx_group::X25519,
            Group::X25519MlKem768 => X25519MLKEM768,
            Group::Secp256r1 => kx_group::SECP256R1,
            Group::Secp384r1 => kx_group::SECP384R1,
        }
    }
}

/// Session resumption with stateless tickets.
#[derive(Debug, Clone, Copy)]
pub struct Resumption<'a> {
    /// How long one ticket key encrypts new tickets (accepted for at most twice this).
    pub ticket_rotation: Duration,
    /// Who shares ticket keys across reloads: the listener's name. Listeners never share keys,
    /// so a session proved on one cannot be resumed on another with a different policy.
    pub scope: &'a str,
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
    /// Key exchange groups offered; empty means ring's defaults (X25519, P-256, P-384).
    pub groups: &'a [Group],
    /// Resumption with tickets; `None` turns resumption (tickets and session ids) off.
    pub resumption: Option<Resumption<'a>>,
}

/// Ticket keys by listener and policy, held weakly: a reload's new configuration finds the
/// keys the old one still holds, so clients keep resuming; keys of removed listeners go away
/// with the last configuration using them.
static TICKETERS: Mutex<Vec<(String, Weak<dyn rustls::server::ProducesTickets>)>> =
    Mutex::new(Vec::new());

/// Makes rustls's ChaCha20-Poly1305 ticketer (itself rotating every 6 h) usable as the
/// generator of a rotator with another period: each rotation makes a fresh one, with fresh keys.
#[derive(Debug)]
struct FreshTicketer(Arc<dyn rustls::server::ProducesTickets>);

impl rustls::server::ProducesTickets for FreshTicketer {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

fn fresh_ticketer(
) -> Result<Box<dyn rustls::server::ProducesTickets>, rustls::crypto::GetRandomFailed> {
    rustls::crypto::ring::Ticketer::new()
        .map(|t| Box::new(FreshTicketer(t)) as Box<dyn rustls::server::ProducesTickets>)
        .map_err(|_| rustls::crypto::GetRandomFailed)
}

/// The ticketer for `key`, shared with configurations built before that still hold it.
fn ticketer(
    key: String,
    rotation: Duration,
) -> Result<Arc<dyn rustls::server::ProducesTickets>, TlsError> {
    let mut all = TICKETERS.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(_, w)| w.strong_count() > 0);
    if let Some(t) = all
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(t);
    }
    let secs = u32::try_from(rotation.as_secs().max(1)).unwrap_or(u32::MAX);
    let t: Arc<dyn rustls::server::ProducesTickets> =
        Arc::new(rustls::TicketRotator::new(secs, fresh_ticketer)?);
    all.push((key, Arc::downgrade(&t)));
    Ok(t)
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

/// A downstream TLS configuration: certificates chosen by SNI, ALPN, minimum version, key
/// exchange groups, session resumption.
pub fn server_config(
    pairs: &[CertFiles<'_>],
    opts: ServerOptions<'_>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    for &CertFiles { cert, key, ocsp } in pairs {
        let ck = Arc::new(load_certified_key(cert, key, ocsp)?);
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
    let mut server_provider = rustls::crypto::ring::default_provider();
    if !opts.groups.is_empty() {
        server_provider.kx_groups = opts.groups.iter().map(|g| g.kx()).collect();
    }
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(server_provider))
        .with_protocol_versions(versions)?;
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
    match opts.resumption {
        Some(r) => {
            let auth = opts
                .client_auth
                .map(|a| format!("{}\0{}", a.ca.display(), a.required));
            let key = format!(
                "{}\0{}\0{}",
                r.scope,
                r.ticket_rotation.as_secs(),
                auth.unwrap_or_default()
            );
            cfg.ticketer = ticketer(key, r.ticket_rotation)?;
        }
        None => {
            cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            cfg.send_tls13_tickets = 0;
        }
    }
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
