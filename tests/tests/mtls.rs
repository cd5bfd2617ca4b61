//! Mutual TLS through the real binary: client certificates required or requested against a CA bundle (curl and rustls clients), the verified identity forwarded in `X-Forwarded-Client-Cert` and allowed by SPIFFE ID, client certificates presented to upstreams, CA bundles and client certificates rotated on disk, certificate expiry (gauge and `validate` warnings), and plain HTTP sent to a TLS port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strait_e2e::certs::{Ca, Leaf};
use strait_e2e::config_file::{column_of, line_of, Validated};
use strait_e2e::{metrics, poll_until, Reply, Strait, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEB: &str = "spiffe://example.org/ns/prod/sa/web";
const BATCH: &str = "spiffe://example.org/ns/batch/sa/cron";
const OTHER: &str = "spiffe://example.org/ns/dev/sa/tool";

/// The parties of a mutual-TLS setup: the server's CA and certificate, the CA that issues
/// client certificates, and a CA nobody trusts. Client files live in `dir`.
struct Pki {
    server_ca: Ca,
    server: Leaf,
    clients: Ca,
    other: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let server_ca = Ca::new("server");
        let server = server_ca.leaf(&["mtls.test"]);
        let dir = tempfile::tempdir().unwrap();
        server_ca.write(dir.path(), "server-ca.pem");
        Pki {
            server_ca,
            server,
            clients: Ca::new("clients"),
            other: Ca::new("other"),
            dir,
        }
    }

    /// The files Strait reads, written next to its config.
    fn strait_files(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("server.pem", self.server.cert_pem.clone().into_bytes()),
            ("server.key", self.server.key_pem.clone().into_bytes()),
            ("clients.pem", self.clients.pem().into_bytes()),
        ]
    }

    /// A client certificate written under `dir`: `(cert, key)`.
    fn client_files(&self, leaf: &Leaf, stem: &str) -> (PathBuf, PathBuf) {
        leaf.write(self.dir.path(), stem)
    }

    async fn start(&self, yaml: &str) -> Strait {
        let files = self.strait_files();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        Strait::start_with_files(yaml, &refs).await
    }
}

/// A TLS listener with `client_auth` (`mode`), one route (with `policies`) to `upstream`.
fn config(client_auth: &str, policies: &str, upstream: SocketAddr) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls:\n      cert: server.pem\n      key: server.key\n\
         \x20     client_auth: {client_auth}\n\
         routes:\n  - name: r\n    upstream: up\n{policies}\
         upstreams:\n  - name: up\n    endpoints: [\"{upstream}\"]\n"
    )
}

/// A fresh PKI, a recording upstream, and Strait serving [`config`] in front of it.
async fn setup(client_auth: &str, policies: &str) -> (Pki, Upstream, Strait) {
    let pki = Pki::new();
    let up = Upstream::start("up").await;
    let s = pki.start(&config(client_auth, policies, up.addr())).await;
    (pki, up, s)
}

/// What curl got: the status code (0 when no response came) and its stderr.
struct Curl {
    status: u16,
    body: String,
    stderr: String,
}

/// `curl https://mtls.test:PORT/PATH` trusting the server CA, with `args` added
/// (`--cert`, `--key`, `-H`). Async: in-process upstreams run on the test's runtime.
async fn curl(pki: &Pki, addr: SocketAddr, path: &str, args: &[&str]) -> Curl {
    let port = addr.port();
    let out = tokio::process::Command::new(strait_e2e::tool("curl", &["/usr/bin/curl"]))
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(pki.dir.path().join("server-ca.pem"))
        .arg("--resolve")
        .arg(format!("mtls.test:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("https://mtls.test:{port}{path}"))
        .output()
        .await
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cert_args(files: &(PathBuf, PathBuf)) -> [String; 4] {
    [
        "--cert".into(),
        files.0.display().to_string(),
        "--key".into(),
        files.1.display().to_string(),
    ]
}

async fn curl_with(pki: &Pki, addr: SocketAddr, path: &str, files: &(PathBuf, PathBuf)) -> Curl {
    let args = cert_args(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(pki, addr, path, &args).await
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A reqwest client trusting the server CA that presents `identity` when given.
fn reqwest_client(pki: &Pki, addr: SocketAddr, identity: Option<&Leaf>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(pki.server_ca.pem().as_bytes()).unwrap(),
        )
        .resolve("mtls.test", addr)
        .timeout(Duration::from_secs(10));
    if let Some(leaf) = identity {
        let pem = format!("{}{}", leaf.cert_pem, leaf.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn require_mode_fails_the_handshake_without_a_certificate_or_with_one_from_another_ca() {
    let (pki, up, s) = setup("{ ca: clients.pem, mode: require }", "").await;
    let none = curl(&pki, s.web(), "/", &[]).await;
    assert_eq!(
        none.status, 0,
        "no HTTP response without a certificate: {}",
        none.body
    );
    let foreign = pki.client_files(&pki.other.client("intruder", &[WEB]), "foreign");
    let other = curl_with(&pki, s.web(), "/", &foreign).await;
    assert_eq!(
        other.status, 0,
        "a certificate from another CA is refused: {}",
        other.body
    );
    // rustls as a client: the server's alert ends the connection before any response.
    let no_cert = reqwest_client(&pki, s.web(), None)
        .get(format!("https://mtls.test:{}/", s.web().port()))
        .send()
        .await;
    assert!(no_cert.is_err(), "{no_cert:?}");
    assert!(up.requests().is_empty(), "nothing may reach the upstream");
    let m = s.metrics().await;
    assert!(
        metrics::sum(
            &m,
            "strait_tls_handshake_errors_total",
            &[("listener", "web")]
        ) >= 3.0,
        "{m}"
    );
}

#[tokio::test]
async fn require_mode_forwards_the_verified_identity_and_replaces_a_client_sent_xfcc() {
    let (pki, up, s) = setup("{ ca: clients.pem, mode: require }", "").await;
    let leaf = pki.clients.client("web", &[WEB]);
    let files = pki.client_files(&leaf, "web");
    let mut args: Vec<String> = cert_args(&files).into();
    args.push("-H".into());
    args.push(
        "X-Forwarded-Client-Cert: Hash=forged;URI=spiffe://example.org/ns/prod/sa/admin".into(),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = curl(&pki, s.web(), "/who", &args).await;
    assert_eq!(r.status, 200, "{}{}", r.body, r.stderr);
    let xfcc = up.only_request().header("x-forwarded-client-cert");
    assert_eq!(
        xfcc,
        format!(
            "Hash={};Subject=\"O=Strait Tests,CN=web\";URI={WEB}",
            sha256_hex(&leaf.der)
        )
    );
}

#[tokio::test]
async fn request_mode_serves_clients_without_a_certificate_and_forwards_no_xfcc() {
    let (pki, up, s) = setup("{ ca: clients.pem, mode: request }", "").await;
    let url = format!("https://mtls.test:{}/anon", s.web().port());
    let anon = reqwest_client(&pki, s.web(), None)
        .get(&url)
        .header("x-forwarded-client-cert", "Hash=forged;URI=spiffe://evil/")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 200);
    assert_eq!(up.only_request().header("x-forwarded-client-cert"), "");

    let leaf = pki.clients.client("batch", &[BATCH]);
    let with = reqwest_client(&pki, s.web(), Some(&leaf))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    let xfcc = up.requests()[1].header("x-forwarded-client-cert");
    assert!(xfcc.ends_with(&format!(";URI={BATCH}")), "{xfcc}");

    // A presented certificate must still verify.
    let foreign = pki.client_files(&pki.other.client("intruder", &[WEB]), "foreign");
    assert_eq!(curl_with(&pki, s.web(), "/", &foreign).await.status, 0);
}

#[tokio::test]
async fn sanitize_removes_a_client_sent_xfcc_and_sends_none() {
    let (pki, up, s) = setup("{ ca: clients.pem, forward_client_cert: sanitize }", "").await;
    let leaf = pki.clients.client("web", &[WEB]);
    let resp = reqwest_client(&pki, s.web(), Some(&leaf))
        .get(format!("https://mtls.test:{}/", s.web().port()))
        .header("x-forwarded-client-cert", "Hash=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.only_request().header("x-forwarded-client-cert"), "");
}

#[tokio::test]
async fn client_cert_policy_allows_listed_and_wildcard_spiffe_ids_and_refuses_others_with_403() {
    let policy = format!(
        "    policies:\n      - name: spiffe\n        client_cert:\n          allow: [\"{WEB}\", \"spiffe://example.org/ns/batch/*\"]\n"
    );
    let (pki, up, s) = setup("{ ca: clients.pem, mode: request }", &policy).await;
    let url = format!("https://mtls.test:{}/api", s.web().port());
    for (who, uri, want) in [
        ("web", WEB, 200),
        ("batch", BATCH, 200),
        ("tool", OTHER, 403),
    ] {
        let leaf = pki.clients.client(who, &[uri]);
        let resp = reqwest_client(&pki, s.web(), Some(&leaf))
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{who}");
    }
    let anon = reqwest_client(&pki, s.web(), None)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 403);
    assert_eq!(
        up.requests().len(),
        2,
        "only the allowed identities were forwarded"
    );
    let m = s.metrics().await;
    for reason in ["client_cert_denied", "client_cert_missing"] {
        assert_eq!(
            metrics::sum(
                &m,
                "strait_policy_denials_total",
                &[("policy", "spiffe"), ("reason", reason)]
            ),
            1.0,
            "{reason}"
        );
    }
}

/// Writes `leaf` over `dir/STEM.pem` and `dir/STEM.key` the way rotation agents do (rename).
fn rotate(dir: &Path, stem: &str, leaf: &Leaf) {
    std::fs::write(dir.join(format!("{stem}.key.new")), &leaf.key_pem).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem.new")), &leaf.cert_pem).unwrap();
    std::fs::rename(
        dir.join(format!("{stem}.key.new")),
        dir.join(format!("{stem}.key")),
    )
    .unwrap();
    std::fs::rename(
        dir.join(format!("{stem}.pem.new")),
        dir.join(format!("{stem}.pem")),
    )
    .unwrap();
}

#[tokio::test]
async fn upstream_mtls_presents_the_client_certificate_and_picks_up_a_rotated_one() {
    let up_ca = Ca::new("upstream");
    let up_leaf = up_ca.leaf(&["127.0.0.1"]);
    let trusted = Ca::new("upstream clients");
    let untrusted = Ca::new("stranger");
    let up = Upstream::with_tls(
        "tls-up",
        up_leaf.server_config_requiring_clients(&trusted, &[b"http/1.1"]),
        |_| Reply::text("mtls upstream"),
    )
    .await;
    // Starts with a certificate the upstream does not trust.
    let first = untrusted.client("strait", &["spiffe://example.org/ns/edge/sa/strait"]);
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n\
         \x20   tls: {{ ca: up-ca.pem, cert: client.pem, key: client.key }}\n",
        up.addr()
    );
    let s = Strait::start_with_files(
        &yaml,
        &[
            ("up-ca.pem", up_ca.pem().as_bytes()),
            ("client.pem", first.cert_pem.as_bytes()),
            ("client.key", first.key_pem.as_bytes()),
        ],
    )
    .await;
    let r = strait_e2e::client::get(s.web(), "/").await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "the upstream refuses an untrusted client certificate"
    );
    assert!(up.requests().is_empty());

    let good = trusted.client("strait", &["spiffe://example.org/ns/edge/sa/strait"]);
    rotate(s.dir(), "client", &good);
    poll_until(
        Duration::from_secs(5),
        "rotated client certificate used",
        || async {
            let r = strait_e2e::client::get(s.web(), "/").await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn a_rotated_client_ca_bundle_is_trusted_without_a_restart() {
    let (pki, _up, s) = setup("{ ca: clients.pem }", "").await;
    let newcomer = pki.client_files(&pki.other.client("new", &[WEB]), "new");
    assert_eq!(curl_with(&pki, s.web(), "/", &newcomer).await.status, 0);

    // The new CA joins the bundle (both trusted while clients move over).
    let bundle = format!("{}{}", pki.clients.pem(), pki.other.pem());
    std::fs::write(s.dir().join("clients.pem.new"), bundle).unwrap();
    std::fs::rename(s.dir().join("clients.pem.new"), s.dir().join("clients.pem")).unwrap();
    poll_until(Duration::from_secs(5), "new CA trusted", || async {
        (curl_with(&pki, s.web(), "/", &newcomer).await.status == 200).then_some(())
    })
    .await;
    let old = pki.client_files(&pki.clients.client("old", &[WEB]), "old");
    assert_eq!(curl_with(&pki, s.web(), "/", &old).await.status, 200);
}

#[tokio::test]
async fn certificate_expiry_is_exported_per_listener_and_upstream() {
    let ca = Ca::new("expiry");
    // 2030-01-01T00:00:00Z and 2031-01-01T00:00:00Z.
    let listener_until = UNIX_EPOCH + Duration::from_secs(1_893_456_000);
    let upstream_until = UNIX_EPOCH + Duration::from_secs(1_924_992_000);
    let server = ca.leaf_until(&["mtls.test"], listener_until);
    let client = ca.leaf_until(&["client.test"], upstream_until);
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls: { cert: server.pem, key: server.key }\n\
                routes:\n  - name: r\n    upstream: up\n\
                upstreams:\n  - name: up\n    endpoints: [\"127.0.0.1:9\"]\n    tls: { cert: client.pem, key: client.key }\n";
    let s = Strait::start_with_files(
        yaml,
        &[
            ("server.pem", server.cert_pem.as_bytes()),
            ("server.key", server.key_pem.as_bytes()),
            ("client.pem", client.cert_pem.as_bytes()),
            ("client.key", client.key_pem.as_bytes()),
        ],
    )
    .await;
    let m = s.metrics().await;
    let gauge = "strait_tls_certificate_expiry_timestamp_seconds";
    assert_eq!(
        metrics::sum(
            &m,
            gauge,
            &[
                ("kind", "listener"),
                ("name", "web"),
                ("cert", "server.pem")
            ]
        ),
        1_893_456_000.0,
        "{m}"
    );
    assert_eq!(
        metrics::sum(
            &m,
            gauge,
            &[("kind", "upstream"), ("name", "up"), ("cert", "client.pem")]
        ),
        1_924_992_000.0,
        "{m}"
    );
}

#[test]
fn validate_warns_about_certificates_expired_or_expiring_within_14_days() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("soon");
    let day = Duration::from_secs(86_400);
    let soon = ca.leaf_until(&["soon.test"], SystemTime::now() + 3 * day);
    let expired = ca.leaf_until(&["old.test"], SystemTime::now() - 2 * day);
    let fine = ca.leaf_until(&["fine.test"], SystemTime::now() + 90 * day);
    let (soon_cert, soon_key) = soon.write(dir.path(), "soon");
    let (old_cert, old_key) = expired.write(dir.path(), "old");
    let (fine_cert, fine_key) = fine.write(dir.path(), "fine");
    let yaml = format!(
        "admin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls:\n      certificates:\n\
         \x20       - {{ cert: \"{}\", key: \"{}\" }}\n\
         \x20       - {{ cert: \"{}\", key: \"{}\" }}\n\
         routes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"127.0.0.1:9\"]\n    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        soon_cert.display(),
        soon_key.display(),
        fine_cert.display(),
        fine_key.display(),
        old_cert.display(),
        old_key.display(),
    );
    let v = Validated::run(&yaml, &[]);
    v.assert_ok();
    let soon_line = line_of(&yaml, "soon.pem");
    let want = format!(
        "{}:{soon_line}:{}: warning: certificate {} expires on ",
        v.file.display(),
        column_of(&yaml, "soon.pem", "\"/"),
        soon_cert.display()
    );
    let line = v
        .stderr
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("no warning {want:?}; stderr:\n{}", v.stderr));
    assert!(line.ends_with("UTC (in 3 days)"), "{line}");
    assert!(
        v.stderr.contains(&format!(
            "warning: certificate {} expired on ",
            old_cert.display()
        )),
        "{}",
        v.stderr
    );
    assert!(!v.stderr.contains("fine.pem"), "{}", v.stderr);
}

/// Asserts an error `message` at the line holding `at.0`, column of `at.1` on it.
fn assert_error(v: &Validated, yaml: &str, at: (&str, &str), message: &str) {
    let line = line_of(yaml, at.0);
    let want = format!(":{line}:{}: {message}", column_of(yaml, at.0, at.1));
    assert!(
        v.errors_at(line).iter().any(|l| l.contains(&want)),
        "no {want:?}; stderr:\n{}",
        v.stderr
    );
}

#[test]
fn client_auth_errors_point_at_the_unknown_mode_and_the_missing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = Ca::new("cfg")
        .leaf(&["cfg.test"])
        .write(dir.path(), "server");
    let yaml = format!(
        "admin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls:\n\
         \x20     cert: \"{}\"\n      key: \"{}\"\n      client_auth:\n        ca: missing-ca.pem\n        mode: sometimes\n",
        cert.display(),
        key.display()
    );
    let v = Validated::run(&yaml, &[]);
    assert_error(
        &v,
        &yaml,
        ("mode: sometimes", "sometimes"),
        "unknown client_auth.mode `sometimes`: expected one of `require`, `request`",
    );
    assert_error(
        &v,
        &yaml,
        ("missing-ca.pem", "missing-ca.pem"),
        "client_auth.ca: file `missing-ca.pem` not found",
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_a_readable_400_and_the_connection_closes() {
    let (_pki, up, s) = setup("{ ca: clients.pem }", "").await;
    let mut tcp = tokio::net::TcpStream::connect(s.web()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: mtls.test\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    strait_e2e::within(
        Duration::from_secs(5),
        "reply then close",
        tcp.read_to_string(&mut reply),
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(
        reply.ends_with("plain HTTP request sent to HTTPS port\n"),
        "{reply}"
    );

    let out = tokio::process::Command::new(strait_e2e::tool("curl", &["/usr/bin/curl"]))
        .args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
        ])
        .arg(format!("http://127.0.0.1:{}/", s.web().port()))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    let m = s.metrics().await;
    assert_eq!(
        metrics::sum(
            &m,
            "strait_downstream_rejected_requests_total",
            &[("listener", "web"), ("reason", "plain_http")]
        ),
        2.0
    );
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn routes_match_on_the_verified_spiffe_id_and_clients_without_one_fall_through() {
    let pki = Pki::new();
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls:\n      cert: server.pem\n      key: server.key\n\
         \x20     client_auth: { ca: clients.pem, mode: request }\n\
         routes:\n\
         \x20 - name: web-only\n    match: { path_prefix: /svc, client_cert: [\"spiffe://example.org/ns/prod/sa/web\"] }\n\
         \x20   respond: { status: 200, body: \"for web\" }\n\
         \x20 - name: batch-ns\n    match: { path_prefix: /svc, client_cert: [\"spiffe://example.org/ns/batch/*\"] }\n\
         \x20   respond: { status: 200, body: \"for batch\" }\n\
         \x20 - name: public\n    match: { path_prefix: /svc }\n    respond: { status: 200, body: \"for anyone\" }\n";
    let s = pki.start(yaml).await;
    let addr = s.web();
    let web = pki.client_files(&pki.clients.client("web", &[WEB]), "web");
    let batch = pki.client_files(&pki.clients.client("cron", &[BATCH]), "cron");
    let dev = pki.client_files(&pki.clients.client("tool", &[OTHER]), "tool");
    // The same SPIFFE ID from a CA the listener does not trust never reaches a route.
    let forged = pki.client_files(&pki.other.client("web", &[WEB]), "forged");
    for (files, want) in [
        (&web, "for web"),
        (&batch, "for batch"),
        (&dev, "for anyone"),
    ] {
        let r = curl_with(&pki, addr, "/svc/x", files).await;
        assert_eq!((r.status, r.body.as_str()), (200, want), "{}", r.stderr);
    }
    let anon = curl(&pki, addr, "/svc/x", &[]).await;
    assert_eq!((anon.status, anon.body.as_str()), (200, "for anyone"));
    // A header claiming the identity changes nothing.
    let spoof = curl(
        &pki,
        addr,
        "/svc/x",
        &[
            "-H",
            "x-forwarded-client-cert: URI=spiffe://example.org/ns/prod/sa/web",
        ],
    )
    .await;
    assert_eq!(spoof.body, "for anyone");
    let forged = curl_with(&pki, addr, "/svc/x", &forged).await;
    assert_eq!(forged.status, 0, "untrusted CA: handshake fails");

    // The route table shows the condition; a bad pattern is an error at its line.
    let out = strait_e2e::strait::run_cli(&["routes", "-c", s.config_path().to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("client_cert=spiffe://example.org/ns/batch/*"),
        "{table}"
    );
    let bad = yaml.replace("ns/batch/*", "ns/*/sa");
    std::fs::write(s.dir().join("bad.yaml"), bad).unwrap();
    let out = strait_e2e::strait::run_cli(&[
        "validate",
        "-c",
        s.dir().join("bad.yaml").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.yaml:13:") && err.contains("may only end"),
        "{err}"
    );
}

/// One `openssl s_client` GET to `mtls.test` presenting `files`, with extra `args`; its output.
async fn s_client(
    pki: &Pki,
    addr: SocketAddr,
    files: &(PathBuf, PathBuf),
    args: &[&str],
) -> String {
    let mut cmd = tokio::process::Command::new("timeout");
    cmd.args(["10", "openssl", "s_client", "-connect"])
        .arg(addr.to_string())
        .args(["-servername", "mtls.test", "-ign_eof", "-CAfile"])
        .arg(pki.dir.path().join("server-ca.pem"))
        .arg("-cert")
        .arg(&files.0)
        .arg("-key")
        .arg(&files.1)
        .args(args)
        .current_dir(pki.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("openssl s_client runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: mtls.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_resumed_session_never_outlives_its_client_certificate() {
    let (pki, _up, s) = setup("{ ca: clients.pem }", "").await;
    let addr = s.web();
    // A workload certificate that expires in 3 s (x509 times are whole seconds).
    let until = SystemTime::now() + Duration::from_secs(3);
    let leaf = pki.clients.client_until("web", &[WEB], until);
    let files = pki.client_files(&leaf, "short");
    let first = s_client(&pki, addr, &files, &["-sess_out", "short.sess"]).await;
    assert!(first.contains("HTTP/1.1 200"), "{first}");
    let again = s_client(&pki, addr, &files, &["-sess_in", "short.sess"]).await;
    assert!(
        again.contains("Reused, TLSv1.3") && again.contains("HTTP/1.1 200"),
        "resumed while valid: {again}"
    );
    let errors = |m: &str| {
        metrics::sum(
            m,
            "strait_tls_handshake_errors_total",
            &[("listener", "web")],
        )
    };
    let before = errors(&s.metrics().await);
    let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1_500)).await;
    let stale = s_client(&pki, addr, &files, &["-sess_in", "short.sess"]).await;
    assert!(
        !stale.contains("HTTP/1.1 200"),
        "resumed after expiry: {stale}"
    );
    assert!(
        errors(&s.metrics().await) > before,
        "counted as a failed handshake"
    );
}
