//! The etcd provider's state store: documents (rollout state) shared by the fleet, kept outside the watched configuration prefix and written with compare-and-swap transactions.
//!
//! A document `NAME` lives at `<prefix without its trailing slash>.state/NAME`: for the
//! default prefix `/strait/`, `/strait.state/rollouts`. `.` sorts before `/`, so the key is
//! outside the watched range `[/strait/, /strait0)` and a state write never reloads the
//! configuration, while an operator still finds it next to the prefix (`etcdctl get
//! --prefix /strait.state/`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::client::describe;
use super::proto::{
    self, Compare, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use super::{lock, Inner, REQUEST_TIMEOUT};
use crate::provider::StateStore;

/// The key prefix state documents live under, for the configuration prefix `prefix`.
pub fn state_prefix(prefix: &str) -> String {
    format!("{}.state/", prefix.trim_end_matches('/'))
}

/// Rollout state shared through etcd (see the module docs).
pub(super) struct EtcdState {
    pub(super) inner: Arc<Inner>,
    pub(super) prefix: String,
}

impl EtcdState {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `f` on the runtime and waits for it: callers are off the runtime's worker threads
    /// (the rollout controller's steps run in `spawn_blocking`).
    fn block<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.inner.runtime.spawn(async move {
            let result = tokio::time::timeout(REQUEST_TIMEOUT, f)
                .await
                .unwrap_or_else(|_| Err(format!("etcd did not answer within {REQUEST_TIMEOUT:?}")));
            let _ = tx.send(result);
        });
        rx.recv_timeout(REQUEST_TIMEOUT + Duration::from_secs(1))
            .unwrap_or_else(|_| Err("etcd did not answer in time".into()))
    }

    fn client(&self) -> Result<super::Client, String> {
        lock(&self.inner.client)
            .clone()
            .ok_or_else(|| "etcd is unreachable".to_string())
    }

    /// One transaction putting `text` at `key` when `compare` holds; the revision written, or
    /// `None` when the compare failed.
    fn put(&self, key: String, text: &str, compare: Vec<Compare>) -> Result<Option<i64>, String> {
        let c = self.client()?;
        let txn = TxnRequest {
            compare,
            success: vec![RequestOp::put(key, text.as_bytes())],
            failure: Vec::new(),
        };
        self.block(async move {
            let resp: TxnResponse = c
                .unary(proto::TXN, txn)
                .await
                .map_err(|s| format!("etcd write failed: {}", describe(&s)))?;
            Ok(resp
                .succeeded
                .then(|| resp.header.map_or(0, |h| h.revision)))
        })
    }
}

impl StateStore for EtcdState {
    fn describe(&self) -> String {
        format!("etcd:{}", self.prefix)
    }

    fn load(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.load_versioned(name)?.0)
    }

    fn store(&self, name: &str, text: &str) -> Result<(), String> {
        self.put(self.key(name), text, Vec::new()).map(|_| ())
    }

    fn shared(&self) -> bool {
        true
    }

    fn load_versioned(&self, name: &str) -> Result<(Option<String>, i64), String> {
        let c = self.client()?;
        let req = RangeRequest {
            key: self.key(name).into_bytes(),
            range_end: Vec::new(),
        };
        self.block(async move {
            let resp: RangeResponse = c
                .unary(proto::RANGE, req)
                .await
                .map_err(|s| format!("etcd read failed: {}", describe(&s)))?;
            Ok(resp.kvs.into_iter().next().map_or((None, 0), |kv| {
                (
                    Some(String::from_utf8_lossy(&kv.value).into_owned()),
                    kv.mod_revision,
                )
            }))
        })
    }

    fn store_if(&self, name: &str, text: &str, version: i64) -> Result<Option<i64>, String> {
        // A missing key compares as mod revision 0, which is what `version` 0 means.
        let key = self.key(name);
        let compare = vec![Compare::mod_revision_is(key.clone(), version)];
        self.put(key, text, compare)
    }
}
