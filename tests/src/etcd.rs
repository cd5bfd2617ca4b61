//! A real etcd (Debian's `etcd-server`, /usr/bin/etcd): one member or a cluster on free
//! loopback ports with temp data dirs, members stopped and restarted on the same ports and
//! data, the leader found by asking each member, every process killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use strait_control::etcd::client::{Options, Tls};
use strait_control::etcd::proto::{
    self, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse,
};
/// The etcd client the tests use: Strait's own.
pub use strait_control::etcd::Client;

use crate::certs::Ca;

/// How long a member (or the whole cluster) may take to elect a leader and answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin token of instances started with [`Etcd::bootstrap_with_admin`].
pub const ADMIN_TOKEN: &str = "etcd-admin-token-0123456789";

/// A route matching `path` exactly and answering `body`, as the value of `/strait/routes/NAME`.
pub fn respond(path: &str, body: &str) -> String {
    format!("match: {{ path: {path} }}\nrespond: {{ body: \"{body}\" }}\n")
}

/// `PUT /api/RESOURCE` (e.g. `routes/hello`) on `s`'s admin API with [`ADMIN_TOKEN`],
/// overwriting whatever runs; the status and the body.
pub async fn admin_put(s: &crate::Strait, resource: &str, body: &str) -> (u16, String) {
    let r = crate::client::reqwest_client()
        .put(format!("http://{}/api/{resource}", s.admin()))
        .bearer_auth(ADMIN_TOKEN)
        .header("if-match", "*")
        .body(body.to_string())
        .send()
        .await
        .expect("admin request");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// PEM files for an etcd that serves clients over TLS and requires client certificates.
pub struct TlsFiles {
    /// The CA that signed both the server's and the client's certificate.
    pub ca: PathBuf,
    /// etcd's server certificate (SAN 127.0.0.1) and key.
    pub server: (PathBuf, PathBuf),
    /// A client certificate and key, for Strait and the test's own client.
    pub client: (PathBuf, PathBuf),
}

impl TlsFiles {
    /// A fresh CA, server and client certificate, written into `dir`.
    pub fn generate(dir: &std::path::Path) -> TlsFiles {
        let ca = Ca::new("etcd");
        TlsFiles {
            ca: ca.write(dir, "etcd-ca.pem"),
            server: ca.leaf(&["127.0.0.1"]).write(dir, "etcd-server"),
            client: ca.leaf(&["strait-client"]).write(dir, "etcd-client"),
        }
    }

    fn client_tls(&self) -> Tls {
        let read = |p: &PathBuf| std::fs::read(p).expect("read pem");
        Tls {
            ca: Some(read(&self.ca)),
            identity: Some((read(&self.client.0), read(&self.client.1))),
        }
    }
}

/// A running etcd cluster (possibly of one member).
pub struct Etcd {
    members: Vec<Member>,
    cluster: String,
    token: String,
    tls: Option<TlsFiles>,
    /// More flags for every member.
    args: Vec<String>,
    /// Authentication for the fixture's own clients once `enable_auth` ran.
    user: Option<(String, String)>,
    // Kept for its Drop: removes data dirs and logs.
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// One member.
    pub async fn single() -> Etcd {
        Self::cluster(1).await
    }

    /// `n` members. Heartbeat and election timeouts are raised well above etcd's defaults
    /// (100 ms / 1 s) so that a loaded two-core machine does not make members miss heartbeats
    /// and hold elections the tests did not ask for.
    pub async fn cluster(n: usize) -> Etcd {
        Self::start(n, None, &[]).await
    }

    /// One member started with extra etcd flags (e.g. `--auth-token-ttl 1`).
    pub async fn single_with(args: &[&str]) -> Etcd {
        Self::start(1, None, args).await
    }

    /// One member serving clients over TLS (https://) and requiring a client certificate.
    pub async fn single_tls(tls: TlsFiles) -> Etcd {
        Self::start(1, Some(tls), &[]).await
    }

    async fn start(n: usize, tls: Option<TlsFiles>, args: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                // Members are stopped and restarted on these ports.
                client: SocketAddr::from(([127, 0, 0, 1], crate::stable_port())),
                peer: SocketAddr::from(([127, 0, 0, 1], crate::stable_port())),
                data: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("strait-test-{}", members[0].client.port());
        let mut etcd = Etcd {
            members,
            cluster,
            token,
            tls,
            args: args.iter().map(|a| a.to_string()).collect(),
            user: None,
            _dir: dir,
        };
        for i in 0..n {
            etcd.start_member(i);
        }
        etcd.wait_healthy().await;
        etcd
    }

    fn start_member(&mut self, i: usize) {
        let bin = crate::tool("etcd", &["/usr/bin/etcd"]);
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {} already running", m.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open etcd log");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://{}", m.client);
        let peer_url = format!("http://{}", m.peer);
        let mut cmd = Command::new(&bin);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server.0)
                .arg("--key-file")
                .arg(&t.server.1)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "250", "--election-timeout", "2500"])
            .args(["--log-level", "warn"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        m.child = Some(child);
    }

    /// Client URLs of every member, for `config.endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.url(i)).collect()
    }

    fn url(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.members[i].client)
    }

    fn options(&self) -> Options {
        Options {
            tls: self.tls.as_ref().map(TlsFiles::client_tls),
            credentials: self.user.clone(),
            // Responses as large as Strait reads (the big-configuration test reads them back).
            max_message_bytes: Some(64 << 20),
            ..Options::default()
        }
    }

    async fn connect(&self, endpoints: &[String]) -> Result<Client, String> {
        Client::connect(endpoints, self.options()).await
    }

    /// Turns on etcd's user authentication with user `root` / `password`; later fixture
    /// clients log in as root.
    pub async fn enable_auth(&mut self, password: &str) {
        let c = self.client().await;
        let _: Empty = c
            .unary(
                "/etcdserverpb.Auth/UserAdd",
                UserAdd {
                    name: "root".into(),
                    password: password.into(),
                },
            )
            .await
            .expect("user add");
        let _: Empty = c
            .unary(
                "/etcdserverpb.Auth/UserGrantRole",
                GrantRole {
                    user: "root".into(),
                    role: "root".into(),
                },
            )
            .await
            .expect("grant root");
        let _: Empty = c
            .unary("/etcdserverpb.Auth/AuthEnable", Empty {})
            .await
            .expect("auth enable");
        self.user = Some(("root".into(), password.into()));
    }

    /// A bootstrap file for this etcd (1 s dial timeout, so tests with etcd down start quickly).
    pub fn bootstrap(&self) -> String {
        format!(
            "config:\n  provider: etcd\n  endpoints: {}\n  dial_timeout: 1s\n",
            self.endpoints_yaml()
        )
    }

    /// [`Etcd::bootstrap`] with an admin listener on a free port and [`ADMIN_TOKEN`].
    pub fn bootstrap_with_admin(&self) -> String {
        format!(
            "admin:\n  listen: 127.0.0.1:0\n  token: {ADMIN_TOKEN}\n{}",
            self.bootstrap()
        )
    }

    /// `[url, url, ...]` as YAML flow list.
    pub fn endpoints_yaml(&self) -> String {
        format!("[{}]", self.endpoints().join(", "))
    }

    /// A client over every member.
    pub async fn client(&self) -> Client {
        crate::within(
            Duration::from_secs(5),
            "etcd client",
            self.connect(&self.endpoints()),
        )
        .await
        .expect("connect to etcd")
    }

    /// The value of `key`, if it exists.
    pub async fn value(&self, client: &Client, key: &str) -> Option<String> {
        let req = RangeRequest {
            key: key.into(),
            range_end: Vec::new(),
        };
        let resp: RangeResponse = client.unary(proto::RANGE, req).await.expect("etcd get");
        resp.kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }

    /// Deletes `key`.
    pub async fn delete(&self, client: &Client, key: &str) {
        let req = DeleteRangeRequest {
            key: key.into(),
            range_end: Vec::new(),
        };
        let _: DeleteRangeResponse = client
            .unary(proto::DELETE_RANGE, req)
            .await
            .expect("etcd delete");
    }

    /// Puts `key` = `value`, retrying (bounded) while the cluster has no leader; returns the revision.
    pub async fn put(&self, client: &Client, key: &str, value: &str) -> i64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let req = PutRequest {
                key: key.into(),
                value: value.into(),
            };
            let attempt = tokio::time::timeout(
                Duration::from_secs(3),
                client.unary::<_, PutResponse>(proto::PUT, req),
            )
            .await;
            match attempt {
                Ok(Ok(r)) => return r.header.map_or(0, |h| h.revision),
                failure => {
                    if tokio::time::Instant::now() >= deadline {
                        panic!("put {key} failed for 20s: {failure:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Compacts the history up to `revision`, retrying (bounded) like [`Etcd::put`].
    pub async fn compact(&self, client: &Client, revision: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(3),
                client
                    .unary::<_, CompactionResponse>(proto::COMPACT, CompactionRequest { revision }),
            )
            .await;
            match attempt {
                Ok(Ok(_)) => return,
                failure => {
                    if tokio::time::Instant::now() >= deadline {
                        panic!("compact {revision} failed for 20s: {failure:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The index of the member that is leader now (asks each running member).
    pub async fn leader(&self) -> usize {
        crate::poll_until(Duration::from_secs(15), "an etcd leader", || async {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                let Ok(Some(s)) =
                    tokio::time::timeout(Duration::from_secs(2), self.status(i)).await
                else {
                    continue;
                };
                let id = s.header.map_or(0, |h| h.member_id);
                if id != 0 && s.leader == id {
                    return Some(i);
                }
            }
            None
        })
        .await
    }

    /// Member `i`'s view of the cluster, or `None` when it does not answer.
    async fn status(&self, i: usize) -> Option<Status> {
        let c = self.connect(&[self.url(i)]).await.ok()?;
        c.unary("/etcdserverpb.Maintenance/Status", Empty {})
            .await
            .ok()
    }

    /// Kills member `i` (SIGKILL: a crash, no leadership hand-over).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops member `i` without closing its sockets (SIGSTOP): connections stay open and
    /// requests queue unanswered, as with a member stalled by a full disk or a long GC.
    pub fn pause(&self, i: usize) {
        self.signal(i, "STOP");
    }

    /// Lets a paused member run again (SIGCONT); it then handles what queued meanwhile.
    pub fn resume(&self, i: usize) {
        self.signal(i, "CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.members[i].child.as_ref().expect("member running").id();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {pid} failed");
    }

    /// Kills every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Restarts every stopped member on its ports and data, and waits until the cluster answers.
    pub async fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.start_member(i);
            }
        }
        self.wait_healthy().await;
    }

    /// The members' logs (for failure messages).
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                format!("--- {} ---\n{text}", m.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn wait_healthy(&self) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let mut ok = true;
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                let up = async { (self.status(i).await?.leader != 0).then_some(()) };
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(2), up).await,
                    Ok(Some(()))
                ) {
                    ok = false;
                    break;
                }
            }
            if ok {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "etcd not healthy within {START_TIMEOUT:?}; logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
    }
}

// The few admin messages only the fixture sends (field numbers from etcd's rpc.proto).

/// An empty request or a response whose fields are not read (`StatusRequest`,
/// `AuthEnableRequest`, `AuthUserAddResponse`, ...).
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

/// `AuthUserAddRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct UserAdd {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    password: String,
}

/// `AuthUserGrantRoleRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct GrantRole {
    #[prost(string, tag = "1")]
    user: String,
    #[prost(string, tag = "2")]
    role: String,
}

/// `StatusResponse`: who answered and who it thinks leads.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(message, optional, tag = "1")]
    header: Option<proto::ResponseHeader>,
    #[prost(uint64, tag = "4")]
    leader: u64,
}
