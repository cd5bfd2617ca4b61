//! A real nginx (Debian's /usr/sbin/nginx) as a second upstream
//! implementation: own prefix and config in a temp dir, `daemon off;
//! master_process off;`, on a free loopback port, killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx serving static files from its `html/` directory.
pub struct Nginx {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Nginx {
    /// Start nginx serving `files` (relative path, contents) from its root.
    pub fn start(files: &[(&str, &[u8])]) -> Nginx {
        let bin = crate::tool("nginx", &["/usr/sbin/nginx"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for sub in ["conf", "html", "logs", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        for (name, contents) in files {
            let p = d.join("html").join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(p, contents).expect("write html file");
        }
        let port = crate::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let p = d.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {p}/logs/error.log info;\npid {p}/logs/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {p}/logs/access.log;\n\
               client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n\
               scgi_temp_path {p}/tmp/scgi;\n\
               types {{ text/plain txt; text/html html; application/json json; }}\n\
               default_type application/octet-stream;\n\
               server {{\n    listen {addr};\n    root {p}/html;\n    location / {{ }}\n  }}\n}}\n"
        );
        std::fs::write(d.join("conf/nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(&bin)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("conf/nginx.conf"))
            .arg("-e")
            .arg(d.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut n = Nginx {
            child: Some(child),
            dir,
            addr,
        };
        n.wait_listening();
        n
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                panic!("nginx exited with {st}; error.log:\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx not listening on {} within 10s; error.log:\n{}",
                self.addr,
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The served root directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("html")
    }

    /// Contents of nginx's error log.
    pub fn error_log(&self) -> String {
        read(&self.dir.path().join("logs/error.log"))
    }

    /// Contents of nginx's access log.
    pub fn access_log(&self) -> String {
        read(&self.dir.path().join("logs/access.log"))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
