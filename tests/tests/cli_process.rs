//! Process set-up through the real binary: version and build info, shell completions, log level and colour, the open-file limit, and where the configuration is read from without `-c`.

use std::path::Path;
use std::time::Duration;

use strait_e2e::client;
use strait_e2e::config_file::write;
use strait_e2e::process::{address_in, Spawned};
use strait_e2e::strait::run_cli_in;
use strait_e2e::Strait;

const WAIT: Duration = Duration::from_secs(15);

/// A config answering `GET /` with `body`, admin and listener on port 0.
fn answering(body: &str) -> String {
    format!(
        "admin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: all\n    respond: {{ body: \"{body}\" }}\n"
    )
}

/// The body of `GET /` on the listener `p` logged as bound.
async fn body_of_root(p: &mut Spawned) -> String {
    let line = p.wait_line("listener bound", WAIT);
    let addr = address_in(&line).expect("listener address");
    let resp = client::get(addr, "/").await.expect("GET /");
    String::from_utf8_lossy(resp.body()).into_owned()
}

#[tokio::test]
async fn version_metrics_and_startup_log_name_the_commit() {
    let out = run_cli_in(&["version"], &[], None);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let prefix = format!("strait {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`strait version` printed {line:?}"))
        .to_string();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit:?}"
    );
    // In a git checkout the commit is one of this repository's.
    if commit != "unknown" {
        let st = std::process::Command::new("git")
            .arg("-C")
            .arg(strait_e2e::workspace_root())
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "{commit} is not a commit here"
        );
    }
    let flag = run_cli_in(&["--version"], &[], None);
    assert_eq!(String::from_utf8_lossy(&flag.stdout).trim(), line);

    let s = Strait::start("listeners:\n  - name: web\n    listen: 127.0.0.1:0\n").await;
    let metrics = s.metrics().await;
    let want = format!(
        "strait_build_info{{commit=\"{commit}\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&want), "no {want:?} in /metrics");
    let logs = s.logs_text();
    let start = logs
        .lines()
        .find(|l| l.contains("strait starting"))
        .unwrap_or_else(|| panic!("no startup line:\n{logs}"));
    let config = s.config_path().display().to_string();
    let source = format!("{config} (-c)");
    for part in [commit.as_str(), env!("CARGO_PKG_VERSION"), source.as_str()] {
        assert!(start.contains(part), "{part:?} not in {start}");
    }
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _strait"),
        ("zsh", "#compdef strait"),
        ("fish", "complete -c strait"),
    ] {
        let out = run_cli_in(&["completions", shell], &[], None);
        assert!(out.status.success(), "{shell}: {:?}", out.status);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("validate"), "{shell}: subcommands missing");
    }
    // The bash script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli_in(&["completions", "bash"], &[], None);
    let file = dir.path().join("strait.bash");
    std::fs::write(&file, &out.stdout).unwrap();
    let st = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success(), "bash -n rejects the script");
}

#[test]
fn text_logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "c.yaml", &answering("hi"));
    let args = ["run", "-c", file.to_str().unwrap(), "--log-format", "text"];
    let mut p = Spawned::strait(&args, &[("NO_COLOR", "")], dir.path());
    p.admin();
    let text = p.text();
    assert!(text.contains("INFO"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in piped logs:\n{text:?}"
    );
}

#[tokio::test]
async fn log_level_comes_from_the_flag_then_strait_log_then_rust_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = strait_e2e::free_port();
    let yaml = answering("hi").replace(
        "listen: \"127.0.0.1:0\"",
        &format!("listen: \"127.0.0.1:{port}\""),
    );
    let file = write(dir.path(), "c.yaml", &yaml);
    let run = ["run", "-c", file.to_str().unwrap()];
    let debug_line = "\"level\":\"DEBUG\"";

    // --log-level warn beats STRAIT_LOG=debug: no info line at all.
    let mut args = run.to_vec();
    args.extend(["--log-level", "warn"]);
    let p = Spawned::strait(
        &args,
        &[("STRAIT_LOG", "debug"), ("RUST_LOG", "")],
        dir.path(),
    );
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    ready(admin).await;
    assert!(!p.text().contains("\"level\":\"INFO\""), "{}", p.text());
    drop(p);

    // STRAIT_LOG beats RUST_LOG, and RUST_LOG alone is honoured.
    for env in [
        [("STRAIT_LOG", "debug"), ("RUST_LOG", "warn")],
        [("STRAIT_LOG", ""), ("RUST_LOG", "debug")],
    ] {
        let mut p = Spawned::strait(&run, &env, dir.path());
        // `admin bound` is logged before the signal handlers exist (a SIGHUP then ends the
        // process); /readyz answers only once they do.
        let admin = p.admin();
        ready(admin).await;
        // A reload logs `reload done` at debug.
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &p.pid().to_string()])
            .status();
        assert!(hup.is_ok_and(|s| s.success()));
        let line = p.wait_line("reload done", WAIT);
        assert!(line.contains(debug_line), "{line}");
    }

    // A filter that does not parse is refused at start.
    let mut args = run.to_vec();
    args.extend(["--log-level", "info,strait=[("]);
    let mut p = Spawned::strait(&args, &[], dir.path());
    assert_eq!(p.wait_exit(WAIT), Some(2));
    assert!(p.text().contains("invalid --log-level"), "{}", p.text());
}

/// Waits (bounded) until the admin listener at `admin` answers `/readyz` with 200.
async fn ready(admin: std::net::SocketAddr) {
    strait_e2e::poll_until(WAIT, "readyz", || async {
        client::get(admin, "/readyz")
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
}

/// `Max open files` soft and hard limits of process `pid`.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let mut cols = line["Max open files".len()..].split_whitespace();
    (
        cols.next().unwrap().to_string(),
        cols.next().unwrap().to_string(),
    )
}

#[test]
fn open_file_limit_is_raised_to_the_hard_limit_and_a_shortfall_is_warned() {
    let prlimit = strait_e2e::tool("prlimit", &["/usr/bin/prlimit", "/bin/prlimit"]);
    let prlimit = prlimit.to_str().unwrap();
    let wrapper = [prlimit, "--nofile=256:2048", "--"];
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str, yaml: &str| {
        let file = write(dir.path(), name, yaml);
        let args = ["run", "-c", file.to_str().unwrap()];
        let mut p = Spawned::wrapped(&wrapper, &args, &[], dir.path());
        p.admin();
        p
    };
    // The default max_connections (10,000) is more than 2,048 descriptors allow.
    let mut p = start("c.yaml", &answering("hi"));
    assert_eq!(nofile_of(p.pid()), ("2048".into(), "2048".into()));
    p.wait_line("raised the open-file limit", WAIT);
    let warn = p.wait_line(
        "open-file limit (2048) is below the 10000 connections",
        WAIT,
    );
    assert!(warn.contains("WARN"), "{warn}");
    drop(p);

    // Connections the limit covers: raised, and no warning.
    let small = answering("hi").replace(
        "listen: 127.0.0.1:0\n",
        "listen: 127.0.0.1:0\n    limits: { max_connections: 1000 }\n",
    );
    let p = start("small.yaml", &small);
    assert_eq!(nofile_of(p.pid()).0, "2048");
    assert!(!p.text().contains("is below the"), "{}", p.text());
}

#[test]
fn validate_without_c_reads_strait_config_then_strait_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let bad = "listeners:\n  - name: web\n    listen: nowhere\n";
    write(cwd, "strait.yaml", bad);
    let good = write(cwd, "good.yaml", &answering("hi"));

    let out = run_cli_in(
        &["validate"],
        &[("STRAIT_CONFIG", good.to_str().unwrap())],
        Some(cwd),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{}: ok", good.display())));

    let out = run_cli_in(&["validate"], &[("STRAIT_CONFIG", "")], Some(cwd));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("./strait.yaml:3:13: "), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let out = run_cli_in(&["validate"], &[("STRAIT_CONFIG", "")], Some(empty.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("pass -c FILE, set STRAIT_CONFIG, or create ./strait.yaml"));
}

#[tokio::test]
async fn run_without_c_serves_strait_config_then_strait_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write(cwd, "strait.yaml", &answering("from strait.yaml"));
    let env_file = write(cwd, "env.yaml", &answering("from STRAIT_CONFIG"));

    let mut p = Spawned::strait(
        &["run"],
        &[("STRAIT_CONFIG", env_file.to_str().unwrap())],
        cwd,
    );
    assert_eq!(body_of_root(&mut p).await, "from STRAIT_CONFIG");
    assert!(
        p.wait_line("strait starting", WAIT)
            .contains("(STRAIT_CONFIG)")
            || p.text().contains("($STRAIT_CONFIG)")
    );
    drop(p);

    let mut p = Spawned::strait(&["run"], &[("STRAIT_CONFIG", "")], cwd);
    assert_eq!(body_of_root(&mut p).await, "from strait.yaml");
    let start = p.wait_line("strait starting", WAIT);
    assert!(
        start.contains("./strait.yaml (found in the working directory)"),
        "{start}"
    );
}

/// The embedded default binds fixed ports (8080, 9901); when another process holds them the
/// test checks what it can without them: the source named at start.
#[tokio::test]
async fn run_with_no_config_anywhere_serves_the_embedded_default() {
    let empty = tempfile::tempdir().unwrap();
    let free = |p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let ports_free = free(8080) && free(9901);
    let mut p = Spawned::strait(&["run"], &[("STRAIT_CONFIG", "")], empty.path());
    let start = p.wait_line("strait starting", WAIT);
    assert!(start.contains("the embedded default"), "{start}");
    if !ports_free || !in_dir_is_empty(empty.path()) {
        return;
    }
    assert_eq!(p.admin().port(), 9901);
    let body = body_of_root(&mut p).await;
    assert!(body.starts_with("Welcome to Strait"), "{body}");
}

fn in_dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// The first thing a new user does with the example: `curl localhost:8080/`.
#[tokio::test]
async fn minimal_example_answers_a_plain_curl_of_root_with_directions() {
    let path = strait_e2e::workspace_root().join("examples/minimal.yaml");
    let yaml = std::fs::read_to_string(path).expect("read examples/minimal.yaml");
    let yaml = yaml
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let s = Strait::start(&yaml).await;
    let curl = strait_e2e::tool("curl", &["/usr/bin/curl"]);
    let out = std::process::Command::new(curl)
        .args(["-sS", "--max-time", "10", &s.url("/")])
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        body.starts_with("Strait is running examples/minimal.yaml"),
        "{body}"
    );
    assert!(body.contains("Host: api.example.com"), "{body}");
}
