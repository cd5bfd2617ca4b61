//! An HTTP/3 client (quinn + h3) for the tests: curl on this machine has no HTTP/3.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::certs::provider;
use crate::BoxError;

/// One HTTP/3 connection; requests on it may run concurrently (clone [`H3Client::sender`]).
pub struct H3Client {
    /// Sends requests on the connection.
    pub sender: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    /// The QUIC connection (its remote address, close reason).
    pub quic: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

/// A response as received: head, whole body, trailers.
pub struct H3Response {
    /// Status and headers; the body is all DATA frames joined.
    pub response: Response<Bytes>,
    /// Trailers, when the server sent them.
    pub trailers: Option<HeaderMap>,
}

impl H3Client {
    /// Connects to `addr` over QUIC, naming `server_name` (SNI), trusting `roots`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        roots: &[CertificateDer<'static>],
    ) -> Result<H3Client, BoxError> {
        Self::connect_with(addr, server_name, roots, None).await
    }

    /// Like [`H3Client::connect`], presenting `client_cert` (chain, PKCS#8 key DER) if given.
    pub async fn connect_with(
        addr: SocketAddr,
        server_name: &str,
        roots: &[CertificateDer<'static>],
        client_cert: Option<(Vec<CertificateDer<'static>>, Vec<u8>)>,
    ) -> Result<H3Client, BoxError> {
        let mut store = RootCertStore::empty();
        for r in roots {
            store.add(r.clone())?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(store);
        let mut tls = match client_cert {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let key = rustls_pki_types::PrivatePkcs8KeyDer::from(key);
                builder.with_client_auth_cert(chain, key.into())?
            }
        };
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))?;
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let quic = endpoint.connect(addr, server_name)?.await?;
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(quic.clone())).await?;
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(H3Client {
            sender,
            quic,
            _endpoint: endpoint,
        })
    }

    /// Sends `req` (its body in 16 KiB DATA frames) and reads the whole response.
    pub async fn send(&mut self, req: Request<Bytes>) -> Result<H3Response, BoxError> {
        send_on(&mut self.sender.clone(), req).await
    }
}

/// Sends `req` with `sender` and reads the whole response.
pub async fn send_on(
    sender: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    req: Request<Bytes>,
) -> Result<H3Response, BoxError> {
    let (parts, body) = req.into_parts();
    let mut stream = sender.send_request(Request::from_parts(parts, ())).await?;
    let mut at = 0;
    while at < body.len() {
        let end = (at + 16 * 1024).min(body.len());
        stream.send_data(body.slice(at..end)).await?;
        at = end;
    }
    stream.finish().await?;
    let head = stream.recv_response().await?;
    let mut out = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        while chunk.has_remaining() {
            let c = chunk.chunk();
            let n = c.len();
            out.extend_from_slice(c);
            chunk.advance(n);
        }
    }
    let trailers = stream.recv_trailers().await?;
    Ok(H3Response {
        response: head.map(|()| out.freeze()),
        trailers,
    })
}
