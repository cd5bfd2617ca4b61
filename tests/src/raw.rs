//! Raw-socket HTTP/1.1 upstreams for the edge cases a well-behaved server library avoids: closing idle keep-alive connections on a timer, and answering before reading the request body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a [`RawUpstream`] treats each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Answers `200 ok` with keep-alive, and closes a connection idle for the given time
    /// (as many servers do with their keep-alive timeout).
    CloseIdleAfter(Duration),
    /// Answers `401` as soon as a request head arrives, before reading its body, then reads
    /// the body (legal HTTP; servers that reject uploads early do this).
    AnswerBeforeBody,
}

/// A raw HTTP/1.1 upstream on a loopback port; stops on drop.
pub struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    /// Starts one with `behaviour`.
    pub async fn start(behaviour: Behaviour) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, behaviour, r.clone()));
            }
        });
        RawUpstream {
            addr,
            connections,
            requests,
            task,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request heads read so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut tcp: TcpStream, behaviour: Behaviour, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let idle = match behaviour {
            Behaviour::CloseIdleAfter(d) => d,
            Behaviour::AnswerBeforeBody => Duration::from_secs(60),
        };
        let Some(head_end) = read_head(&mut tcp, &mut buf, idle).await else {
            return;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end);
        let reply: &[u8] = match behaviour {
            Behaviour::CloseIdleAfter(_) => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n",
            Behaviour::AnswerBeforeBody if length > 0 => {
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
            }
            Behaviour::AnswerBeforeBody => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n",
        };
        if tcp.write_all(reply).await.is_err() {
            return;
        }
        // The body, at whatever pace it comes (after the answer, for AnswerBeforeBody).
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..length);
    }
}

/// Reads until a complete head is in `buf`; its length, or `None` on close, error or idle.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>, idle: Duration) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(idle, tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}
