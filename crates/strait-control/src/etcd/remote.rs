//! Requests to etcd: the client (authentication, TLS, keep-alives), reading a prefix, and the unconditional write of `strait config push`.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions, Txn, TxnOp,
};
use strait_config::provider::{EtcdSettings, Password};

use super::layout::{self, Values};
use super::{Kv, REQUEST_TIMEOUT};

/// A client for `settings`: authentication, TLS, and keep-alives that notice a dead member.
pub async fn client(settings: &EtcdSettings) -> Result<Client, String> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(settings.dial_timeout)
        // HTTP/2 pings find a member that stopped answering without closing the connection.
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true)
        // A member cut off from the cluster fails requests instead of serving stale reads and
        // holding watches that never fire; the client then moves on to another member.
        .with_require_leader(true);
    if let Some(user) = &settings.username {
        let password = match &settings.password {
            Some(Password::Literal(p)) => p.clone(),
            Some(Password::Env(var)) => std::env::var(var)
                .map_err(|_| format!("config.username is set but the environment variable {var} (the etcd password) is not"))?,
            None => String::new(),
        };
        // etcd's tokens expire (5 minutes idle by default); a long-running watcher must renew them.
        opts = opts
            .with_user(user.clone(), password)
            .with_auto_token_refresh(true);
    }
    if let Some(tls) = &settings.tls {
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            let pem =
                std::fs::read(ca).map_err(|e| format!("config.tls.ca {}: {e}", ca.display()))?;
            t = t.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            let c = std::fs::read(cert)
                .map_err(|e| format!("config.tls.cert {}: {e}", cert.display()))?;
            let k =
                std::fs::read(key).map_err(|e| format!("config.tls.key {}: {e}", key.display()))?;
            t = t.identity(Identity::from_pem(c, k));
        }
        opts = opts.with_tls(t);
    }
    Client::connect(&settings.endpoints, Some(opts))
        .await
        .map_err(|e| format!("cannot connect to etcd: {e}"))
}

/// Every key under `prefix` (relative) and the revision they were read at.
pub(super) async fn range(
    client: &Client,
    prefix: &str,
) -> Result<(BTreeMap<String, Kv>, i64), String> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(super::MAX_MESSAGE_BYTES);
    let resp = tokio::time::timeout(
        REQUEST_TIMEOUT,
        kv.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
    .map_err(|e| e.to_string())?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut keys = BTreeMap::new();
    for item in resp.kvs() {
        let Some(rel) = item.key().strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        keys.insert(
            String::from_utf8_lossy(rel).into_owned(),
            Kv {
                value: String::from_utf8_lossy(item.value()).into_owned(),
                mod_revision: item.mod_revision(),
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
    let mut ops: Vec<TxnOp> = values
        .iter()
        .filter(|(k, v)| existing.get(*k).is_none_or(|old| !layout::same(k, old, v)))
        .map(|(k, v)| TxnOp::put(format!("{prefix}{k}"), v.clone(), None))
        .collect();
    let puts = ops.len();
    let mut deletes = 0;
    if replace {
        for k in existing.keys().filter(|k| !values.contains_key(*k)) {
            ops.push(TxnOp::delete(format!("{prefix}{k}"), None));
            deletes += 1;
        }
    }
    if ops.is_empty() {
        return Ok((0, 0, 0));
    }
    let mut c = client.clone();
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, c.txn(Txn::new().and_then(ops)))
        .await
        .map_err(|_| format!("etcd did not answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| format!("etcd write failed: {e}"))?;
    Ok((resp.header().map_or(0, |h| h.revision()), puts, deletes))
}
