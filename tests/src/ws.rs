//! A WebSocket echo upstream (tokio-tungstenite) that records the upgrade
//! request headers and echoes every text and binary message.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// A running WebSocket echo server.
pub struct WsEcho {
    addr: SocketAddr,
    upgrades: Arc<Mutex<Vec<http::HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WsEcho {
    /// Start on a free loopback port.
    pub async fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        let addr = listener.local_addr().expect("local_addr");
        let upgrades = Arc::new(Mutex::new(Vec::new()));
        let rec = upgrades.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let rec = rec.clone();
                conns.spawn(async move {
                    // The callback signature is tungstenite's.
                    #[allow(clippy::result_large_err)]
                    let cb = |req: &Request, resp: Response| {
                        rec.lock().unwrap().push(req.headers().clone());
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_close() {
                            let _ = ws.close(None).await;
                            return;
                        }
                        let echo = msg.is_text() || msg.is_binary();
                        if echo && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        WsEcho {
            addr,
            upgrades,
            task,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Headers of every upgrade request received.
    pub fn upgrades(&self) -> Vec<http::HeaderMap> {
        self.upgrades.lock().unwrap().clone()
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}
