//! TLS: certificate selection by SNI, ALPN h2 and http/1.1, the minimum
//! version, and upstream HTTP/2 over TLS (verified with a configured CA, or
//! with verification skipped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Version;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use strait_e2e::certs::{accept_any_client_config, client_config, Ca, Leaf};
use strait_e2e::client::{self, header, text};
use strait_e2e::{within, Reply, Strait, Upstream};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Two CAs, each signing one leaf: `a.test` (default) and `b.test`.
struct SniSetup {
    ca_a: Ca,
    leaf_a: Leaf,
    leaf_b: Leaf,
    _dir: tempfile::TempDir,
    strait: Strait,
}

async fn sni_setup(extra_tls: &str, routes: &str, upstreams: &str) -> SniSetup {
    let dir = tempfile::tempdir().unwrap();
    let ca_a = Ca::new("a");
    let ca_b = Ca::new("b");
    let leaf_a = ca_a.leaf(&["a.test"]);
    let leaf_b = ca_b.leaf(&["b.test"]);
    let (ca_cert, ca_key) = leaf_a.write(dir.path(), "a");
    let (cb_cert, cb_key) = leaf_b.write(dir.path(), "b");
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls:\n      certificates:\n\
         \x20       - {{ cert: \"{}\", key: \"{}\" }}\n\
         \x20       - {{ cert: \"{}\", key: \"{}\" }}\n{extra_tls}\
         routes:\n{routes}{upstreams}",
        ca_cert.display(),
        ca_key.display(),
        cb_cert.display(),
        cb_key.display()
    );
    let strait = Strait::start(&yaml).await;
    SniSetup {
        ca_a,
        leaf_a,
        leaf_b,
        _dir: dir,
        strait,
    }
}

const RESPOND: &str = "  - name: hello\n    respond: { status: 200, body: \"hello tls\" }\n";

async fn handshake(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_string()).expect("server name");
    within(
        Duration::from_secs(10),
        "TLS handshake",
        TlsConnector::from(cfg).connect(server_name, tcp),
    )
    .await
}

fn peer_leaf(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server presented a certificate")
        .to_vec()
}

fn https_client(ca_pem: &str, host: &str, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve(host, addr)
        .timeout(Duration::from_secs(20));
    if http1_only {
        b = b.http1_only();
    }
    b.build().unwrap()
}

#[tokio::test]
async fn sni_selects_the_certificate_and_the_first_is_the_default() {
    let t = sni_setup("", RESPOND, "").await;
    let addr = t.strait.web();
    let any = accept_any_client_config(&[]);
    for (sni, want, label) in [
        ("a.test", &t.leaf_a, "a.test"),
        ("b.test", &t.leaf_b, "b.test"),
        ("unknown.test", &t.leaf_a, "default for an unknown name"),
        // rustls sends no SNI for an IP address.
        ("127.0.0.1", &t.leaf_a, "default without SNI"),
    ] {
        let tls = handshake(addr, any.clone(), sni).await.expect("handshake");
        assert!(
            peer_leaf(&tls) == want.der.to_vec(),
            "wrong certificate for {label}"
        );
    }
    // Full verification against the issuing CA works for the selected name.
    let verified = client_config(&[t.ca_a.der()], rustls::DEFAULT_VERSIONS, &[]);
    handshake(addr, verified, "a.test")
        .await
        .expect("verified handshake for a.test");
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http1() {
    let t = sni_setup("", RESPOND, "").await;
    let addr = t.strait.web();
    let any = accept_any_client_config(&[b"h2", b"http/1.1"]);
    let tls = handshake(addr, any, "a.test").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h1 = accept_any_client_config(&[b"http/1.1"]);
    let tls = handshake(addr, h1, "a.test").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let url = format!("https://a.test:{}/", addr.port());
    for (http1_only, want) in [(false, Version::HTTP_2), (true, Version::HTTP_11)] {
        let c = https_client(&t.ca_a.pem(), "a.test", addr, http1_only);
        let resp = c.get(&url).send().await.expect("https request");
        assert_eq!(resp.version(), want);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "hello tls");
    }
}

#[tokio::test]
async fn tls_listener_forwards_with_x_forwarded_proto_https() {
    let up = Upstream::start("up").await;
    let upstreams = format!(
        "upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let t = sni_setup("", "  - name: r\n    upstream: up\n", &upstreams).await;
    let addr = t.strait.web();
    let c = https_client(&t.ca_a.pem(), "a.test", addr, true);
    let resp = c
        .get(format!("https://a.test:{}/secure", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rec = up.only_request();
    assert_eq!(rec.header("x-forwarded-proto"), "https");
    assert_eq!(rec.header("host"), format!("a.test:{}", addr.port()));
}

#[tokio::test]
async fn min_version_1_3_rejects_a_tls12_only_client() {
    let t = sni_setup("      min_version: \"1.3\"\n", RESPOND, "").await;
    let addr = t.strait.web();
    let roots = [t.ca_a.der()];
    let tls12 = client_config(&roots, &[&rustls::version::TLS12], &[]);
    assert!(
        handshake(addr, tls12, "a.test").await.is_err(),
        "a TLS 1.2-only client must be rejected"
    );
    let tls13 = client_config(&roots, &[&rustls::version::TLS13], &[]);
    let tls = handshake(addr, tls13, "a.test")
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

/// Strait → in-process TLS upstream (ALPN h2) with `tls_yaml` as the upstream's `tls:`.
async fn via_tls_upstream(leaf: &Leaf, tls_yaml: &str) -> (u16, String, Upstream) {
    let up = Upstream::with_tls("tls-up", leaf.server_config(&[b"h2", b"http/1.1"]), |r| {
        Reply::text(&format!("{:?}", r.version))
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n    protocol: h2\n    tls: {tls_yaml}\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let resp = client::get(s.web(), "/over-tls").await.expect("request");
    assert!(!header(&resp, "x-request-id").is_empty());
    (resp.status().as_u16(), text(&resp), up)
}

#[tokio::test]
async fn upstream_h2_over_tls_is_verified_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("upstream");
    let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
    let ca_path = ca.write(dir.path(), "upstream-ca.pem");
    let (status, body, up) =
        via_tls_upstream(&leaf, &format!("{{ ca: \"{}\" }}", ca_path.display())).await;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body, "HTTP/2.0", "upstream connection is HTTP/2");
    assert_eq!(up.only_request().uri.path(), "/over-tls");
}

#[tokio::test]
async fn upstream_tls_with_insecure_skip_verify_accepts_a_self_signed_cert() {
    let leaf = Leaf::self_signed(&["somewhere.else"]);
    let (status, body, _up) = via_tls_upstream(&leaf, "{ insecure_skip_verify: true }").await;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body, "HTTP/2.0");
}

#[tokio::test]
async fn upstream_tls_with_an_untrusted_cert_gives_502() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Ca::new("trusted");
    let other = Ca::new("other");
    let leaf = other.leaf(&["127.0.0.1"]);
    let ca_path = trusted.write(dir.path(), "trusted.pem");
    let (status, body, up) =
        via_tls_upstream(&leaf, &format!("{{ ca: \"{}\" }}", ca_path.display())).await;
    assert_eq!(status, 502, "body: {body}");
    assert!(
        up.requests().is_empty(),
        "no request may pass an unverified TLS session"
    );
}

#[tokio::test]
async fn a_rested_http1_tls_upstream_connection_serves_again() {
    // An idle pooled connection rests after 250 ms (hyper's state freed, the TLS session
    // kept); the next request starts hyper on the same session.
    let leaf = Leaf::self_signed(&["127.0.0.1"]);
    let up = Upstream::with_tls("tls-up", leaf.server_config(&[b"http/1.1"]), |r| {
        Reply::text(r.uri.path())
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n    tls: {{ insecure_skip_verify: true }}\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    for n in 0..3 {
        let resp = client::get(s.web(), &format!("/r{n}"))
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(text(&resp), format!("/r{n}"));
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    }
    assert_eq!(up.connections(), 1, "one TLS connection served all three");
}
