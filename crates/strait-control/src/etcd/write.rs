//! Admin writes to etcd: one transaction guarded by each touched key's revision, and an honest answer when etcd's reply never came.

use std::collections::BTreeMap;

use tonic::{Code, Status};

use super::client::describe;
use super::layout::{self, Values};
use super::proto::{self, Compare, RequestOp, TxnRequest, TxnResponse};
use super::{lock, Inner, Kv, REQUEST_TIMEOUT};
use crate::provider::OUTCOME_UNKNOWN;

// === impl Inner ===

impl Inner {
    /// One transaction: the keys that differ from what was loaded, each compared with the
    /// revision it had then.
    pub(super) async fn store(&self, desired: Values) -> Result<(), String> {
        let prefix = &self.settings.prefix;
        let (compare, success, touched) = {
            let state = lock(&self.state);
            plan(prefix, &state.base, &desired)
        };
        if success.is_empty() {
            return Ok(());
        }
        let Some(c) = lock(&self.client).clone() else {
            return Err(
                "etcd is unreachable (serving the cached configuration); try again when it answers"
                    .into(),
            );
        };
        let txn = TxnRequest {
            compare,
            success,
            failure: Vec::new(),
        };
        let resp: TxnResponse =
            match tokio::time::timeout(REQUEST_TIMEOUT, c.unary(proto::TXN, txn)).await {
                Ok(Ok(r)) => r,
                Ok(Err(s)) if refused(&s) => {
                    return Err(format!("etcd write failed: {}", describe(&s)))
                }
                Ok(Err(s)) => {
                    return Err(outcome_unknown(&format!(
                        "the write to etcd broke off ({})",
                        describe(&s)
                    )))
                }
                Err(_) => {
                    return Err(outcome_unknown(&format!(
                        "etcd did not answer the write within {REQUEST_TIMEOUT:?}"
                    )))
                }
            };
        if !resp.succeeded {
            return Err(format!(
                "conflict: {} changed in etcd since this configuration was loaded; reload and apply the change again",
                touched.join(", ")
            ));
        }
        let revision = resp.header.map_or(0, |h| h.revision);
        let mut state = lock(&self.state);
        for rel in &touched {
            match desired.get(rel) {
                Some(value) => {
                    let kv = Kv {
                        value: value.clone(),
                        mod_revision: revision,
                    };
                    state.base.insert(rel.clone(), kv.clone());
                    // The watch will bring the same event; never let this step back over a newer one.
                    if state
                        .keys
                        .get(rel)
                        .is_none_or(|k| k.mod_revision < revision)
                    {
                        state.keys.insert(rel.clone(), kv);
                    }
                }
                None => {
                    state.base.remove(rel);
                    if state
                        .keys
                        .get(rel)
                        .is_some_and(|k| k.mod_revision < revision)
                    {
                        state.keys.remove(rel);
                    }
                }
            }
        }
        self.reassemble(&mut state);
        Ok(())
    }
}

/// The error for a write that etcd may have applied or not: a transaction that was sent
/// can commit after the client gave up on it (a paused or overloaded member answers late),
/// so the caller must look rather than retry blindly.
pub(super) fn outcome_unknown(why: &str) -> String {
    format!(
        "{OUTCOME_UNKNOWN} {why}; etcd may still apply it: check `GET /api/versions` (the watch brings the change within a second if it was applied)"
    )
}

/// Whether etcd (or the client before sending) refused the request, so it cannot apply later.
/// Anything else (a timeout, a connection lost after sending, etcd's own "request timed
/// out") leaves the outcome unknown.
pub(super) fn refused(s: &Status) -> bool {
    // No connection could be made (refused, TLS handshake failed): nothing was sent.
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        if c.is::<tonic::ConnectError>() {
            return true;
        }
        cause = c.source();
    }
    match s.code() {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Unauthenticated => true,
        // Checked before a proposal is made (and what `hasleader` asks for).
        Code::Unavailable => s.message().contains("etcdserver: no leader"),
        _ => false,
    }
}

/// The compares and operations that turn `base` into `desired`, and the keys they touch.
pub(super) fn plan(
    prefix: &str,
    base: &BTreeMap<String, Kv>,
    desired: &Values,
) -> (Vec<Compare>, Vec<RequestOp>, Vec<String>) {
    let mut compares = Vec::new();
    let mut ops = Vec::new();
    let mut touched = Vec::new();
    for (rel, value) in desired {
        let key = format!("{prefix}{rel}");
        match base.get(rel) {
            Some(old) if layout::same(rel, &old.value, value) => continue,
            Some(old) => compares.push(Compare::mod_revision_is(key.clone(), old.mod_revision)),
            None => compares.push(Compare::absent(key.clone())),
        }
        ops.push(RequestOp::put(key, value.as_bytes()));
        touched.push(rel.clone());
    }
    for (rel, old) in base {
        if !desired.contains_key(rel) {
            let key = format!("{prefix}{rel}");
            compares.push(Compare::mod_revision_is(key.clone(), old.mod_revision));
            ops.push(RequestOp::delete(key));
            touched.push(rel.clone());
        }
    }
    (compares, ops, touched)
}
