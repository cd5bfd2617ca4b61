//! Steady background load for "nothing fails while X happens" tests: clients sending GET on new connections until told to stop, bounded in count.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::client;

/// Clients looping `GET /` (each on a new connection) until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<(u32, Vec<String>)>>,
}

impl Load {
    /// One client per address in `addrs`, each sending at most `max` requests.
    pub fn start(addrs: &[SocketAddr], max: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = addrs
            .iter()
            .map(|&addr| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u32, Vec::new());
                    for _ in 0..max {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match client::get(addr, "/").await {
                            Ok(r) if r.status() == 200 => ok += 1,
                            Ok(r) => failed.push(format!("status {}", r.status())),
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the clients; returns the successful count and every failure.
    pub async fn finish(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for t in self.tasks {
            let (o, f) = crate::within(Duration::from_secs(30), "load", t)
                .await
                .expect("load task");
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    }
}
