//! Recording load for traffic-share tests (splits, rollouts): keep-alive clients on one path, each response recorded as the upstream that answered (its body) or the 5xx status.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::poll_until;

/// Keep-alive clients sending GET /PATH every 2 ms (at most 30,000 requests or 90 s each),
/// recording what answered: the upstream's name, or the status for a 5xx.
pub struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    /// Starts recording responses to `GET http://WEB/PATH`.
    pub fn start(web: SocketAddr, path: &str) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, url) = (seen.clone(), stop.clone(), format!("http://{web}/{path}"));
        tokio::spawn(async move {
            let http = crate::client::reqwest_client();
            let deadline = Instant::now() + Duration::from_secs(90);
            for _ in 0..30_000 {
                if st.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                if let Ok(r) = http.get(&url).send().await {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    s.lock().unwrap().push(if status >= 500 {
                        status.to_string()
                    } else {
                        text
                    });
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Recorder { seen, stop }
    }

    /// How many responses were recorded.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of the `n` responses after index `from` came from `upstream`; waits for them.
    pub async fn count_after(&self, from: usize, n: usize, upstream: &str) -> usize {
        poll_until(Duration::from_secs(20), "responses", || async {
            let s = self.seen.lock().unwrap();
            (s.len() >= from + n)
                .then(|| s[from..from + n].iter().filter(|x| *x == upstream).count())
        })
        .await
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
