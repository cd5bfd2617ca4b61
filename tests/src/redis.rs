//! A real Redis (Debian's `redis-server`): one server (optionally with a password or TLS) or a three-master Cluster made by `redis-cli --cluster create`, on free loopback ports with temp dirs, stopped, paused and restarted on the same ports, every process killed on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::certs::Ca;

/// How long a server (or the cluster) may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn server_bin() -> PathBuf {
    crate::tool("redis-server", &["/usr/bin/redis-server"])
}

fn cli_bin() -> PathBuf {
    crate::tool("redis-cli", &["/usr/bin/redis-cli"])
}

/// TLS files for a `rediss://` server.
pub struct TlsFiles {
    /// The CA that signed the server's certificate (what Strait's `ca:` points at).
    pub ca: PathBuf,
    /// Server certificate (SAN 127.0.0.1) and key.
    pub server: (PathBuf, PathBuf),
}

impl TlsFiles {
    /// A fresh CA and server certificate written into `dir`.
    pub fn generate(dir: &Path) -> TlsFiles {
        let ca = Ca::new("redis");
        TlsFiles {
            ca: ca.write(dir, "redis-ca.pem"),
            server: ca.leaf(&["127.0.0.1"]).write(dir, "redis-server"),
        }
    }
}

/// One running (or stopped) redis-server.
pub struct Redis {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// A plain server on a free loopback port.
    pub async fn start() -> Redis {
        Self::start_with(&[], None).await
    }

    /// A server requiring `password` (the default user's `requirepass`).
    pub async fn with_password(password: &str) -> Redis {
        Self::start_with(&["--requirepass", password], None).await
    }

    /// A server speaking only TLS, with `password`; returns it and its TLS files.
    pub async fn with_tls(password: &str) -> (Redis, TlsFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsFiles::generate(dir.path());
        let cert = files.server.0.display().to_string();
        let key = files.server.1.display().to_string();
        let ca = files.ca.display().to_string();
        let args = [
            "--requirepass",
            password,
            "--tls-cert-file",
            cert.as_str(),
            "--tls-key-file",
            key.as_str(),
            "--tls-ca-cert-file",
            ca.as_str(),
            "--tls-auth-clients",
            "no",
        ];
        let r = Self::start_with(&args, Some(dir)).await;
        (r, files)
    }

    async fn start_with(args: &[&str], dir: Option<tempfile::TempDir>) -> Redis {
        let tls = args.contains(&"--tls-cert-file");
        let mut r = Redis {
            // Stopped and restarted on this port.
            port: crate::stable_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            tls,
            _dir: dir.unwrap_or_else(|| tempfile::tempdir().expect("tempdir")),
        };
        r.spawn();
        r.wait_up().await;
        r
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis already running");
        let port = self.port.to_string();
        let mut cmd = Command::new(server_bin());
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &port]);
        } else {
            cmd.args(["--port", &port]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self._dir.path())
            .arg("--logfile")
            .arg(self._dir.path().join(format!("redis-{port}.log")))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
    }

    /// Waits until the port accepts connections.
    async fn wait_up(&self) {
        let addr = self.addr();
        crate::poll_until(START_TIMEOUT, "redis-server listening", || async move {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        })
        .await;
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{}", self.addr())
    }

    /// Kills the server (SIGKILL: a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the killed server again on the same port (empty: nothing is saved).
    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_up().await;
    }

    /// Runs `redis-cli -p PORT ARGS...` (plain servers) and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// Whether `redis-cli PING` answers PONG.
    pub fn pong(&self) -> bool {
        self.cli(&["ping"]).trim() == "PONG"
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(cli_bin())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters (no replicas).
pub struct RedisCluster {
    nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Three `--cluster-enabled` servers joined by `redis-cli --cluster create`; waits until
    /// every node reports `cluster_state:ok`.
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            // The cluster bus port is chosen too, outside the ephemeral range (default: port + 10000).
            let bus = crate::stable_port().to_string();
            let conf = format!("nodes-{bus}.conf");
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf.as_str(),
                "--cluster-port",
                bus.as_str(),
                "--cluster-node-timeout",
                "5000",
            ];
            nodes.push(Redis::start_with(&args, None).await);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        let out = Command::new(cli_bin())
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        crate::poll_until(START_TIMEOUT, "cluster_state:ok on every node", || {
            let ports = ports.clone();
            async move {
                ports
                    .iter()
                    .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
                    .then_some(())
            }
        })
        .await;
        RedisCluster { nodes }
    }

    /// The nodes' URLs as a YAML flow list, for `redis_cluster.nodes`.
    pub fn nodes_yaml(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Redis::url).collect();
        format!("[{}]", urls.join(", "))
    }

    /// Runs `redis-cli -c` against the first node.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        self.nodes[0].cli(&all)
    }
}
