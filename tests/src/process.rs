//! A strait process started with any command line (a wrapper such as `prlimit`, no `-c`, text logs), its stderr lines collected; killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running process and the stderr lines it wrote so far.
pub struct Spawned {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Spawned {
    /// `strait ARGS` in `cwd` with `env` added (an empty value removes the variable).
    pub fn strait(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Spawned {
        Self::wrapped(&[], args, env, cwd)
    }

    /// `WRAPPER... strait ARGS` (for example `prlimit --nofile=256:2048 --`).
    pub fn wrapped(wrapper: &[&str], args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Spawned {
        let bin = crate::strait_bin();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        for (k, v) in env {
            match v {
                &"" => cmd.env_remove(k),
                v => cmd.env(k, v),
            };
        }
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let lines = crate::strait::collect_stderr(&mut child);
        Spawned { child, lines }
    }

    /// Process id (a wrapper that execs, as `prlimit` does, keeps it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits (bounded by `limit`) for a stderr line containing `needle`; panics with the log
    /// when the process exits or the time runs out first.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            // After an exit, one more look: the reader thread may still hold the last lines.
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Some(l) = self.find(needle) {
                return l;
            }
            if let Some(st) = exited {
                panic!(
                    "strait exited ({st}) before logging {needle:?}; stderr:\n{}",
                    self.text()
                );
            }
            if Instant::now() >= deadline {
                panic!("no {needle:?} within {limit:?}; stderr:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn find(&self, needle: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|l| l.contains(needle)).cloned()
    }

    /// The address in the `admin bound` line, JSON or text.
    pub fn admin(&mut self) -> SocketAddr {
        let line = self.wait_line("admin bound", Duration::from_secs(15));
        address_in(&line).unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Waits (bounded) for the process to exit and returns its code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return st.code();
            }
            if Instant::now() >= deadline {
                panic!(
                    "strait did not exit within {limit:?}; stderr:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The first `IP:PORT` after `address` in a log line (`"address":"…"` or `address=…`).
pub fn address_in(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("address")? + "address".len()..];
    let start = rest.find(|c: char| c.is_ascii_digit() || c == '[')?;
    let token: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    token.parse().ok()
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
