//! Requests to etcd: the client (authentication, TLS, keep-alives), reading a prefix, and the unconditional write of `strait config push`.

use std::collections::BTreeMap;
use std::time::Duration;

use strait_config::provider::{EtcdSettings, Password};

use super::client::{self as etcd, describe, Client};
use super::layout::{self, Values};
use super::proto::{self, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse};
use super::{Kv, MAX_MESSAGE_BYTES, REQUEST_TIMEOUT};

/// A client for `settings`: authentication, TLS, and keep-alives that notice a dead member.
pub async fn client(settings: &EtcdSettings) -> Result<Client, String> {
    let credentials = match &settings.username {
        Some(user) => {
            let password = match &settings.password {
                Some(Password::Literal(p)) => p.clone(),
                Some(Password::Env(var)) => std::env::var(var)
                    .map_err(|_| format!("config.username is set but the environment variable {var} (the etcd password) is not"))?,
                None => String::new(),
            };
            Some((user.clone(), password))
        }
        None => None,
    };
    let tls = match &settings.tls {
        Some(tls) => {
            let read = |p: &std::path::Path, field: &str| {
                std::fs::read(p).map_err(|e| format!("config.tls.{field} {}: {e}", p.display()))
            };
            let ca = tls.ca.as_deref().map(|p| read(p, "ca")).transpose()?;
            let identity = match (&tls.cert, &tls.key) {
                (Some(c), Some(k)) => Some((read(c, "cert")?, read(k, "key")?)),
                _ => None,
            };
            Some(etcd::Tls { ca, identity })
        }
        None => None,
    };
    let options = etcd::Options {
        connect_timeout: Some(settings.dial_timeout),
        // HTTP/2 pings find a member that stopped answering without closing the connection.
        keep_alive: Some(Duration::from_secs(2)),
        tls,
        credentials,
        // A member cut off from the cluster fails requests instead of serving stale reads and
        // holding watches that never fire; the balancer then uses another member.
        require_leader: true,
        max_message_bytes: Some(MAX_MESSAGE_BYTES),
    };
    Client::connect(&settings.endpoints, options)
        .await
        .map_err(|e| format!("cannot connect to etcd: {e}"))
}

/// Every key under `prefix` (relative) and the revision they were read at.
pub(super) async fn range(
    client: &Client,
    prefix: &str,
) -> Result<(BTreeMap<String, Kv>, i64), String> {
    let req = RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: proto::prefix_end(prefix.as_bytes()),
    };
    let resp: RangeResponse =
        tokio::time::timeout(REQUEST_TIMEOUT, client.unary(proto::RANGE, req))
            .await
            .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
            .map_err(|s| describe(&s))?;
    let revision = resp.header.map_or(0, |h| h.revision);
    let mut keys = BTreeMap::new();
    for item in resp.kvs {
        let Some(rel) = item.key.strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        keys.insert(
            String::from_utf8_lossy(rel).into_owned(),
            Kv {
                value: String::from_utf8_lossy(&item.value).into_owned(),
                mod_revision: item.mod_revision,
            },
        );
    }
    Ok((keys, revision))
}

/// Reads the values under `prefix` (for `strait config pull`).
pub async fn read(client: &Client, prefix: &str) -> Result<(Values, i64), String> {
    let (keys, revision) = range(client, prefix).await?;
    Ok((
        keys.into_iter().map(|(k, kv)| (k, kv.value)).collect(),
        revision,
    ))
}

/// Writes `values` under `prefix` in one transaction (for `strait config push`); with
/// `replace`, keys under the prefix that `values` lacks are deleted in the same transaction.
/// Returns the revision written and the number of keys put and deleted.
pub async fn push(
    client: &Client,
    prefix: &str,
    values: &Values,
    replace: bool,
) -> Result<(i64, usize, usize), String> {
    let (existing, _) = read(client, prefix).await?;
    let mut ops: Vec<RequestOp> = values
        .iter()
        .filter(|(k, v)| existing.get(*k).is_none_or(|old| !layout::same(k, old, v)))
        .map(|(k, v)| RequestOp::put(format!("{prefix}{k}"), v.as_bytes()))
        .collect();
    let puts = ops.len();
    let mut deletes = 0;
    if replace {
        for k in existing.keys().filter(|k| !values.contains_key(*k)) {
            ops.push(RequestOp::delete(format!("{prefix}{k}")));
            deletes += 1;
        }
    }
    if ops.is_empty() {
        return Ok((0, 0, 0));
    }
    let txn = TxnRequest {
        success: ops,
        ..TxnRequest::default()
    };
    let resp: TxnResponse = tokio::time::timeout(REQUEST_TIMEOUT, client.unary(proto::TXN, txn))
        .await
        .map_err(|_| format!("etcd did not answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|s| format!("etcd write failed: {}", describe(&s)))?;
    Ok((resp.header.map_or(0, |h| h.revision), puts, deletes))
}
