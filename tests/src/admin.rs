//! An admin API client for tests: bearer token, JSON answers with their ETag, writes with `If-Match`.

use std::net::SocketAddr;

use serde_json::Value;

use crate::{Strait, Upstream};

/// A token long enough for `admin.token` (at least 16 characters).
pub const TOKEN: &str = "s3cret-token-0123456789";

/// What an admin call answered.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The `ETag` header (empty when absent).
    pub etag: String,
    /// The body as text.
    pub text: String,
}

/// Calls the admin API of one process with a bearer token.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the admin listener at `addr` using [`TOKEN`].
    pub fn new(addr: SocketAddr) -> AdminClient {
        AdminClient::with_token(addr, TOKEN)
    }

    /// A client for the admin listener at `addr` using `token`.
    pub fn with_token(addr: SocketAddr, token: &str) -> AdminClient {
        AdminClient {
            base: format!("http://{addr}"),
            token: token.to_string(),
            http: crate::client::reqwest_client(),
        }
    }

    /// `http://ADMIN` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the bearer token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Sends `b` and reads the whole answer.
    pub async fn send(b: reqwest::RequestBuilder) -> Answer {
        let r = b.send().await.expect("admin request");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (status, content_type, etag) =
            (r.status().as_u16(), header("content-type"), header("etag"));
        let text = r.text().await.unwrap_or_default();
        Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
            etag,
            text,
        }
    }

    /// `GET path`: `(status, JSON body, ETag)`.
    pub async fn json(&self, path: &str) -> (u16, Value, String) {
        let a = Self::send(self.req(reqwest::Method::GET, path)).await;
        (a.status, a.json, a.etag)
    }

    /// A write (`PUT`, `DELETE`, `POST`) with `If-Match` when given: `(status, JSON body)`.
    pub async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        if_match: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut b = self.req(method, path).body(body.to_string());
        if let Some(m) = if_match {
            b = b.header("if-match", m);
        }
        let a = Self::send(b).await;
        (a.status, a.json)
    }

    /// `PUT /api/config` of `doc` over whatever runs (`If-Match: *`).
    pub async fn put_config(&self, doc: &str) -> (u16, Value) {
        self.write(reqwest::Method::PUT, "/api/config", Some("*"), doc)
            .await
    }
}

/// A configuration for admin tests: paths under `/api` proxied to `up`, everything else
/// answered by Strait itself.
pub fn routed_config(up: &Upstream) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    match: {{ path_prefix: / }}\n    respond: {{ status: 200, body: one }}\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    )
}

/// An upstream, Strait serving [`routed_config`] (token from the environment), and an admin
/// client.
pub async fn start_routed() -> (Upstream, Strait, AdminClient) {
    let up = Upstream::start("up").await;
    let s = Strait::start_opts(
        &routed_config(&up),
        &[],
        &[],
        &[("STRAIT_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    let admin = AdminClient::new(s.admin());
    (up, s, admin)
}
