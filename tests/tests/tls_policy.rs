//! A listener's TLS policy through the real binary, with `openssl s_client` as the client: key exchange groups offered and refused, the post-quantum hybrid X25519MLKEM768 (rustls client and an independent Python client), session resumption by tickets across reloads, ticket keys kept per listener and rotated, and OCSP stapling from a file that appears, changes and breaks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use strait_e2e::{metrics, openssl, poll_until, Strait};

const NAME: &str = "policy.test";

/// A CA and a P-256 leaf for [`NAME`] made with the openssl CLI in `dir`: ca.pem, ca.key,
/// leaf.pem, leaf.key.
fn pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "30",
        "-subj",
        "/CN=Policy CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=policy.test",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]);
    openssl(dir, &csr);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName=DNS:{NAME}\n")).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
}

/// A fresh PKI (kept in the returned directory) and Strait serving `listeners` (YAML list
/// items) with a `respond` route; ca.pem, leaf.pem and leaf.key are copied next to its config,
/// where the openssl clients run.
async fn start(listeners: &[String]) -> (tempfile::TempDir, Strait) {
    let pki_dir = tempfile::tempdir().unwrap();
    pki(pki_dir.path());
    let yaml = format!(
        "listeners:\n{}routes:\n  - name: r\n    respond: {{ status: 200, body: \"policy ok\" }}\n",
        listeners.concat()
    );
    let files: Vec<(String, Vec<u8>)> = ["ca.pem", "leaf.pem", "leaf.key"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(pki_dir.path().join(f)).unwrap(),
            )
        })
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    (pki_dir, Strait::start_with_files(&yaml, &files).await)
}

fn listener(name: &str, tls_extra: &str) -> String {
    format!(
        "  - name: {name}\n    listen: 127.0.0.1:0\n    tls: {{ cert: leaf.pem, key: leaf.key{tls_extra} }}\n"
    )
}

/// One `openssl s_client` connection making a GET; its whole output (stdout and stderr).
async fn s_client(dir: &Path, port: u16, args: &[&str]) -> String {
    let dir = dir.to_path_buf();
    let mut all: Vec<String> = [
        "10",
        "openssl",
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-servername",
        NAME,
        "-CAfile",
        "ca.pem",
        "-verify_return_error",
        "-ign_eof",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("timeout")
            .args(&all)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl s_client runs");
        let req = format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
        let _ = child.stdin.take().unwrap().write_all(req.as_bytes());
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
    .await
    .unwrap()
}

fn served(out: &str) -> bool {
    out.contains("policy ok")
}

#[tokio::test]
async fn groups_are_offered_as_configured_and_others_refused() {
    let (_pki, s) = start(&[
        listener("web", ""),
        listener("p256", ", groups: [secp256r1]"),
    ])
    .await;
    let (web, p256) = (s.addr("web").port(), s.addr("p256").port());

    // The default list: X25519 and the NIST curves, over TLS 1.3 and 1.2.
    let out = s_client(s.dir(), web, &["-groups", "X25519"]).await;
    assert!(
        served(&out) && out.contains("Server Temp Key: X25519"),
        "{out}"
    );
    let out = s_client(s.dir(), web, &["-groups", "P-384"]).await;
    assert!(served(&out) && out.contains("secp384r1"), "{out}");
    // (TLS 1.2 clients also name the certificate's curve, P-256, in the same list.)
    let out = s_client(s.dir(), web, &["-groups", "X25519:P-256", "-tls1_2"]).await;
    assert!(served(&out) && out.contains("TLSv1.2"), "{out}");

    // A listener limited to P-256: X25519 alone fails the handshake, P-256 is chosen.
    let out = s_client(s.dir(), p256, &["-groups", "X25519"]).await;
    assert!(!served(&out), "{out}");
    assert!(
        out.contains("alert") || out.contains("handshake failure"),
        "{out}"
    );
    let out = s_client(s.dir(), p256, &["-groups", "X25519:P-256"]).await;
    assert!(served(&out) && out.contains("prime256v1"), "{out}");
    let m = s.metrics().await;
    assert!(
        metrics::sum(
            &m,
            "strait_tls_handshake_errors_total",
            &[("listener", "p256")]
        ) >= 1.0,
        "refused handshakes are counted"
    );
}

/// A rustls client offering only `group`; the negotiated group's name, or the error.
async fn rustls_get(
    ca: &Path,
    port: u16,
    group: &'static dyn rustls::crypto::SupportedKxGroup,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![group],
        ..rustls::crypto::ring::default_provider()
    };
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(NAME.try_into().unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let name = format!(
        "{:?}",
        tls.get_ref()
            .1
            .negotiated_key_exchange_group()
            .unwrap()
            .name()
    );
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut body = String::new();
    let _ = tls.read_to_string(&mut body).await;
    assert!(served(&body), "{body}");
    Ok(name)
}

#[tokio::test]
async fn the_post_quantum_hybrid_is_negotiated_with_clients_that_offer_it() {
    let (_pki, s) = start(&[
        listener("web", ""),
        listener("classic", ", groups: [x25519, secp256r1]"),
    ])
    .await;
    let ca = s.dir().join("ca.pem");
    let hybrid = strait_proxy::tls::X25519MLKEM768;
    assert_eq!(
        rustls_get(&ca, s.addr("web").port(), hybrid).await,
        Ok("X25519MLKEM768".to_string())
    );
    let refused = rustls_get(&ca, s.addr("classic").port(), hybrid).await;
    assert!(refused.is_err(), "{refused:?}");

    // An implementation we did not write: tlslite-ng with kyber-py, offering only the hybrid.
    let py = strait_e2e::python_tools_path();
    let importable = Command::new("python3")
        .args(["-c", "import tlslite, kyber_py"])
        .env("PYTHONPATH", &py)
        .status()
        .is_ok_and(|s| s.success());
    if !importable && std::env::var_os("STRAIT_E2E_REQUIRE_PY").is_none() {
        eprintln!(
            "skipped: python3 cannot import tlslite-ng and kyber-py (scripts/py-tools.sh installs them)"
        );
        return;
    }
    let script = strait_e2e::workspace_root().join("tests/tools/pqhello.py");
    for (listener, ok) in [("web", true), ("classic", false)] {
        let port = s.addr(listener).port().to_string();
        let out = tokio::task::spawn_blocking({
            let (script, py) = (script.clone(), py.clone());
            move || {
                Command::new("timeout")
                    .args(["60", "python3"])
                    .arg(&script)
                    .args(["127.0.0.1", &port, NAME, "/"])
                    .env("PYTHONPATH", &py)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), ok, "{listener}: {text}");
        if ok {
            assert!(served(&text) && text.contains("handshake ok"), "{text}");
        }
    }
}

/// Connects once saving the session to `sess`, then again offering it; the second output.
async fn resume(dir: &Path, port: u16, sess: &str) -> String {
    let _ = std::fs::remove_file(dir.join(sess));
    let first = s_client(dir, port, &["-sess_out", sess]).await;
    assert!(served(&first) && first.contains("New, TLSv1.3"), "{first}");
    assert!(dir.join(sess).exists(), "no session saved: {first}");
    s_client(dir, port, &["-sess_in", sess]).await
}

#[tokio::test]
async fn sessions_resume_across_reloads_but_not_on_another_listener_or_when_off() {
    let (_pki, s) = start(&[
        listener("web", ""),
        listener("other", ""),
        listener("off", ", session_resumption: false"),
    ])
    .await;
    let dir = s.dir().to_path_buf();
    let (web, other, off) = (
        s.addr("web").port(),
        s.addr("other").port(),
        s.addr("off").port(),
    );

    let again = resume(&dir, web, "web.sess").await;
    assert!(
        served(&again) && again.contains("Reused, TLSv1.3"),
        "{again}"
    );
    // TLS 1.2 resumes too.
    let first = s_client(&dir, web, &["-tls1_2", "-sess_out", "web12.sess"]).await;
    assert!(served(&first), "{first}");
    let again = s_client(&dir, web, &["-tls1_2", "-sess_in", "web12.sess"]).await;
    assert!(again.contains("Reused, TLSv1.2"), "{again}");

    // Another listener never accepts the ticket (it may have another client policy).
    let cross = s_client(&dir, other, &["-sess_in", "web.sess"]).await;
    assert!(served(&cross) && cross.contains("New, TLSv1.3"), "{cross}");

    // Resumption off: no TLS 1.3 tickets at all, and no TLS 1.2 session resumed.
    let first = s_client(&dir, off, &[]).await;
    assert!(served(&first), "{first}");
    assert!(!first.contains("Session Ticket arrived"), "{first}");
    let on = s_client(&dir, web, &[]).await;
    assert!(on.contains("Session Ticket arrived"), "{on}");
    // (openssl saves no TLS 1.2 session when the server offered neither a ticket nor an id.)
    let first = s_client(&dir, off, &["-tls1_2", "-sess_out", "off12.sess"]).await;
    assert!(served(&first), "{first}");
    if dir.join("off12.sess").exists() {
        let again = s_client(&dir, off, &["-tls1_2", "-sess_in", "off12.sess"]).await;
        assert!(
            served(&again) && again.contains("New, TLSv1.2"),
            "resumption off: {again}"
        );
    }

    // A reload (a new route) keeps the ticket keys: the session still resumes.
    let _ = resume(&dir, web, "before.sess").await;
    let before = metrics::sum(&s.metrics().await, "strait_config_version", &[]);
    let yaml = std::fs::read_to_string(s.config_path()).unwrap();
    s.write_config(&format!(
        "{yaml}  - name: extra\n    match: {{ path: /extra }}\n    respond: {{ status: 204 }}\n"
    ));
    poll_until(Duration::from_secs(10), "reload applied", || async {
        let v = metrics::sum(&s.metrics().await, "strait_config_version", &[]);
        (v > before).then_some(())
    })
    .await;
    let after = s_client(&dir, web, &["-sess_in", "before.sess"]).await;
    assert!(
        served(&after) && after.contains("Reused, TLSv1.3"),
        "resumed after a reload: {after}"
    );
}

#[tokio::test]
async fn ticket_keys_rotate_and_old_tickets_stop_resuming() {
    let (_pki, s) = start(&[listener(
        "web",
        ", session_resumption: { ticket_rotation: 1s }",
    )])
    .await;
    let dir = s.dir().to_path_buf();
    let web = s.addr("web").port();
    let again = resume(&dir, web, "t.sess").await;
    assert!(again.contains("Reused, TLSv1.3"), "{again}");
    // Each rotation period a new key; the one before is still accepted, older ones are not.
    // Keys roll on use once the period has passed, counted in whole seconds: 2.1 s apart, two
    // handshakes roll twice.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let other = s_client(&dir, web, &[]).await;
        assert!(served(&other), "{other}");
    }
    let stale = s_client(&dir, web, &["-sess_in", "t.sess"]).await;
    assert!(
        served(&stale) && stale.contains("New, TLSv1.3"),
        "a ticket two keys old: {stale}"
    );
}

/// An OCSP response for the leaf, signed by the CA (as its own responder), status `good`.
fn ocsp_response(dir: &Path, out: &str) {
    let serial = String::from_utf8(openssl(
        dir,
        &["x509", "-in", "leaf.pem", "-noout", "-serial"],
    ))
    .unwrap();
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    std::fs::write(
        dir.join("index.txt"),
        format!("V\t391231235959Z\t\t{serial}\tunknown\t/CN=policy.test\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-reqout",
            "req.der",
            "-no_nonce",
        ],
    );
    openssl(
        dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            "req.der",
            "-respout",
            out,
            "-ndays",
            "1",
        ],
    );
}

#[tokio::test]
async fn an_ocsp_response_is_stapled_once_its_file_exists_and_a_broken_one_is_refused() {
    let (tmp, s) = start(&[listener("web", ", ocsp: leaf.ocsp")]).await;
    ocsp_response(tmp.path(), "good.der");
    let dir = s.dir().to_path_buf();
    let web = s.addr("web").port();

    // No file yet: served without a staple.
    let out = s_client(&dir, web, &["-status"]).await;
    assert!(
        served(&out) && out.contains("OCSP response: no response sent"),
        "{out}"
    );

    // The agent writes it (rename, as agents do): the next handshakes staple it.
    std::fs::copy(tmp.path().join("good.der"), dir.join("leaf.ocsp.new")).unwrap();
    std::fs::rename(dir.join("leaf.ocsp.new"), dir.join("leaf.ocsp")).unwrap();
    let out = poll_until(Duration::from_secs(10), "staple served", || async {
        let out = s_client(&dir, web, &["-status"]).await;
        out.contains("OCSP Response Status: successful")
            .then_some(out)
    })
    .await;
    assert!(out.contains("Cert Status: good") && served(&out), "{out}");

    // A broken download is refused: the reload fails, the good staple stays.
    let errors = metrics::sum(
        &s.metrics().await,
        "strait_config_reload_total",
        &[("result", "error")],
    );
    std::fs::write(dir.join("leaf.ocsp"), b"<html>502 Bad Gateway</html>").unwrap();
    poll_until(Duration::from_secs(10), "broken staple refused", || async {
        let m = s.metrics().await;
        (metrics::sum(&m, "strait_config_reload_total", &[("result", "error")]) > errors)
            .then_some(())
    })
    .await;
    let out = s_client(&dir, web, &["-status"]).await;
    assert!(
        served(&out) && out.contains("OCSP Response Status: successful"),
        "{out}"
    );
    let logs = s.logs_text();
    assert!(
        logs.contains("leaf.ocsp") && logs.contains("not a DER OCSP response"),
        "the reason is logged: {logs}"
    );
}
