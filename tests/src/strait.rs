//! The `strait` process fixture: writes a config to a temp dir, runs the real
//! binary on port 0, reads bound addresses from its JSON stderr log, and kills
//! it on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the binary may take to bind its listeners and become ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Locate the strait binary: `$STRAIT_BIN`, else `$CARGO_TARGET_DIR/debug/strait`
/// (at run time, then at compile time), else the target dir this test binary
/// lives in, else `<workspace>/target/debug/strait`. Panics with a clear message
/// when none exists.
pub fn strait_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRAIT_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "STRAIT_BIN={} does not exist", p.display());
        return p;
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug/strait"));
    }
    if let Some(dir) = option_env!("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug/strait"));
    }
    // This test binary is <target>/debug/deps/<name>-<hash>.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(debug) = exe.parent().and_then(Path::parent) {
            candidates.push(debug.join("strait"));
        }
    }
    candidates.push(crate::workspace_root().join("target/debug/strait"));
    candidates.dedup();
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "strait binary not found; looked at {candidates:?}. Build it with \
         `cargo build -p strait` (same CARGO_TARGET_DIR) or set STRAIT_BIN"
    );
}

/// `text` with a policy that does nothing (`headers: {}`, which still runs in every chain)
/// attached to every route: with `STRAIT_E2E_NOOP_POLICY` set, the suite runs through the
/// policy pipeline and must give the same results. Documents that do not parse, or have no
/// routes, are left alone.
pub fn with_noop_policy(text: &str) -> String {
    let Ok(mut doc) = strait_config::to_value("e2e", text) else {
        return text.to_owned();
    };
    let Some(routes) = doc.get_mut("routes").and_then(|r| r.as_array_mut()) else {
        return text.to_owned();
    };
    for r in routes {
        if let Some(route) = r.as_object_mut() {
            let list = route
                .entry("policies")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                list.push(serde_json::json!({ "name": "noop", "headers": {} }));
            }
        }
    }
    strait_config::to_yaml(&doc)
}

/// Run `strait ARGS...` to completion (for `version`, `validate`, `routes`).
pub fn run_cli(args: &[&str]) -> Output {
    run_cli_in(args, &[], None)
}

/// Like [`run_cli`], with extra environment variables (an empty value removes the variable)
/// and in working directory `cwd` when given.
pub fn run_cli_in(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> Output {
    let bin = strait_bin();
    let mut cmd = Command::new(&bin);
    for (k, v) in env {
        match v {
            &"" => cmd.env_remove(k),
            v => cmd.env(k, v),
        };
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("wait_with_output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait_with_output");
            panic!(
                "strait {args:?} did not exit within 20s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running strait process.
pub struct Strait {
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    config: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    admin: SocketAddr,
}

impl Strait {
    /// Write `yaml` to a temp dir and start `strait run -c FILE`. If the yaml has
    /// no `admin:` section, `admin: {listen: 127.0.0.1:0}` is prepended so that
    /// tests never use the default admin port. Waits until the admin listener is
    /// bound and `/readyz` answers 200.
    pub async fn start(yaml: &str) -> Strait {
        Self::start_with_files(yaml, &[]).await
    }

    /// Like [`Strait::start`], also writing `files` (relative name, contents)
    /// next to the config.
    pub async fn start_with_files(yaml: &str, files: &[(&str, &[u8])]) -> Strait {
        Self::start_opts(yaml, files, &[], &[]).await
    }

    /// Like [`Strait::start_with_files`], with extra `run` arguments and environment variables.
    pub async fn start_opts(
        yaml: &str,
        files: &[(&str, &[u8])],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Strait {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        let text = prepare(yaml);
        let config = dir.path().join("strait.yaml");
        std::fs::write(&config, &text).expect("write config");
        let path = dir.path().to_path_buf();
        Self::launch(Some(dir), path, config, args, env).await
    }

    /// Starts another process on the config of `self` (same file, same directory), for
    /// upgrades: the caller keeps `self` alive as long as it needs the directory.
    pub async fn start_next(&self, args: &[&str], env: &[(&str, &str)]) -> Strait {
        Self::launch(None, self.dir.clone(), self.config.clone(), args, env).await
    }

    async fn launch(
        tmp: Option<tempfile::TempDir>,
        dir: PathBuf,
        config: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Strait {
        let text = std::fs::read_to_string(&config).expect("read config");
        let (child, logs) = spawn(&config, args, env);
        let mut s = Strait {
            child: Some(child),
            _tmp: tmp,
            dir,
            config,
            logs,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        s.admin = s.wait_for_admin(&text).await;
        s.wait_ready().await;
        s
    }

    /// Kills the process and starts it again on the same config file and directory (new
    /// ports where the config says port 0); waits until it is ready.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (child, logs) = spawn(&self.config, &[], &[]);
        self.child = Some(child);
        self.logs = logs;
        let text = std::fs::read_to_string(&self.config).unwrap_or_default();
        self.admin = self.wait_for_admin(&text).await;
        self.wait_ready().await;
    }

    async fn wait_for_admin(&mut self, config: &str) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(a) = self.logged_addr("admin bound", None) {
                return a;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                panic!(
                    "strait exited with {status} before binding admin.\nconfig:\n{config}\nstderr:\n{}",
                    self.logs_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "strait did not log `admin bound` within {START_TIMEOUT:?}.\nconfig:\n{config}\nstderr:\n{}",
                    self.logs_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(resp) = crate::client::get(self.admin, "/readyz").await {
                if resp.status() == 200 {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "strait /readyz not 200 within {START_TIMEOUT:?}; stderr:\n{}",
                    self.logs_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Address from a log line with `fields.message == message` (and
    /// `fields.listener == listener` when given).
    fn logged_addr(&self, message: &str, listener: Option<&str>) -> Option<SocketAddr> {
        let logs = self.logs.lock().unwrap();
        logs.iter().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let f = v.get("fields")?;
            if f.get("message")?.as_str()? != message {
                return None;
            }
            if let Some(name) = listener {
                if f.get("listener")?.as_str()? != name {
                    return None;
                }
            }
            f.get("address")?.as_str()?.parse().ok()
        })
    }

    /// The bound address of listener `name` (from its `listener bound` log line).
    pub fn addr(&self, name: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(a) = self.logged_addr("listener bound", Some(name)) {
                return a;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no `listener bound` log line for listener {name:?}; stderr:\n{}",
                    self.logs_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The bound address of listener `web` (the name every simple test uses).
    pub fn web(&self) -> SocketAddr {
        self.addr("web")
    }

    /// `http://ADDR_OF_WEB` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web())
    }

    /// The admin listener address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Config file path and its directory.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces the watched config file with `yaml`, completed as [`Strait::start`] does
    /// (admin on port 0, the no-op policy when `STRAIT_E2E_NOOP_POLICY` is set).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config, prepare(yaml)).expect("write config");
    }

    /// The temp dir holding the config.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// All stderr lines so far.
    pub fn logs_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Send a signal (`TERM`, `INT`, `HUP`) with the system `kill` command.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Wait (bounded) for the process to exit and return its status.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait")
            {
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "strait did not exit within {limit:?}; stderr:\n{}",
                    self.logs_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// `strait_downstream_connections_active` of `listener`, summed over transports.
    pub async fn connections_active(&self, listener: &str) -> f64 {
        crate::metrics::sum(
            &self.metrics().await,
            "strait_downstream_connections_active",
            &[("listener", listener)],
        )
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = crate::within(
            Duration::from_secs(5),
            "GET /metrics",
            crate::client::get(self.admin, "/metrics"),
        )
        .await
        .expect("GET /metrics");
        assert_eq!(resp.status(), 200, "GET /metrics status");
        String::from_utf8(resp.into_body().to_vec()).expect("metrics are utf-8")
    }
}

/// `yaml` with `admin: {listen: 127.0.0.1:0}` prepended when it has no `admin:` section, and
/// the no-op policy on every route when `STRAIT_E2E_NOOP_POLICY` is set.
fn prepare(yaml: &str) -> String {
    let mut text = String::new();
    if !yaml.starts_with("admin:") && !yaml.contains("\nadmin:") {
        text.push_str("admin:\n  listen: 127.0.0.1:0\n");
    }
    text.push_str(yaml);
    if std::env::var_os("STRAIT_E2E_NOOP_POLICY").is_some() {
        text = with_noop_policy(&text);
    }
    text
}

/// Starts `strait run -c config`, collecting its stderr lines.
fn spawn(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, Arc<Mutex<Vec<String>>>) {
    let bin = strait_bin();
    // The default wasm module cache goes beside the config, not into the user's home
    // (a test's `env` may still point it elsewhere).
    let cache = config.parent().unwrap_or(Path::new(".")).join(".cache");
    let mut child = Command::new(&bin)
        .arg("run")
        .arg("-c")
        .arg(config)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let logs = collect_stderr(&mut child);
    (child, logs)
}

/// The lines `child` writes to its (piped) stderr, collected by a thread as they come.
pub(crate) fn collect_stderr(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let stderr = child.stderr.take().expect("stderr piped");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    logs
}

impl Drop for Strait {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Parse `key=value` pairs of a log line's `fields` (for diagnostics).
pub fn log_fields(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(line) {
        if let Some(serde_json::Value::Object(f)) = v.get("fields") {
            for (k, val) in f {
                out.insert(
                    k.clone(),
                    val.as_str().map_or(val.to_string(), String::from),
                );
            }
        }
    }
    out
}
