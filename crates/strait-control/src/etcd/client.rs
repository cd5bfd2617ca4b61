//! A small etcd v3 client over tonic: several endpoints with failover, TLS with client certificates, user tokens renewed when they expire, unary calls and watch streams.
//!
//! It replaces the `etcd-client` crate, whose build script needs `protoc`: the messages are
//! checked in ([`super::proto`]) and the calls are made with tonic's generic [`Grpc`] client,
//! as generated stubs would. Requests are spread over the endpoints by tonic's balancer, which
//! keeps a connection to each and skips one that is down, so a dead member costs no request
//! once its connection has failed.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::stream;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status, Streaming};
use tonic_prost::ProstCodec;

use super::proto::{self, AuthenticateRequest, AuthenticateResponse, WatchRequest, WatchResponse};

/// How to reach etcd.
#[derive(Clone, Default)]
pub struct Options {
    /// Bound on establishing one connection (TCP and TLS).
    pub connect_timeout: Option<Duration>,
    /// HTTP/2 keep-alive: a ping every this often, and the connection dropped when one is not
    /// answered within the same time.
    pub keep_alive: Option<Duration>,
    /// For `https://` endpoints.
    pub tls: Option<Tls>,
    /// User and password for etcd's authentication.
    pub credentials: Option<(String, String)>,
    /// Ask members to refuse requests while they have no leader (`hasleader` metadata).
    pub require_leader: bool,
    /// Largest response message accepted (tonic's default is 4 MiB).
    pub max_message_bytes: Option<usize>,
}

/// PEM material for TLS to etcd.
#[derive(Clone, Default)]
pub struct Tls {
    /// The CA that signed etcd's certificate.
    pub ca: Option<Vec<u8>>,
    /// A client certificate and its key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// A connection to an etcd cluster; cheap to clone (clones share the connections).
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    require_leader: bool,
    max_message_bytes: usize,
    auth: Option<Arc<Auth>>,
}

/// User credentials and the token they were last exchanged for.
struct Auth {
    name: String,
    password: String,
    token: RwLock<Option<AsciiMetadataValue>>,
    /// One refresh at a time: concurrent calls refused with the same stale token wait for it.
    refresh: tokio::sync::Mutex<()>,
}

// === impl Client ===

impl Client {
    /// A client over `endpoints` (`http://host:port`, `https://host:port`, or `host:port`);
    /// with credentials, it authenticates before returning, so wrong ones fail here.
    pub async fn connect(endpoints: &[String], options: Options) -> Result<Client, String> {
        if endpoints.is_empty() {
            return Err("no etcd endpoints".into());
        }
        let list = endpoints
            .iter()
            .map(|url| endpoint(url, &options))
            .collect::<Result<Vec<_>, _>>()?;
        let client = Client {
            channel: Channel::balance_list(list.into_iter()),
            require_leader: options.require_leader,
            max_message_bytes: options.max_message_bytes.unwrap_or(4 << 20),
            auth: options.credentials.map(|(name, password)| {
                Arc::new(Auth {
                    name,
                    password,
                    token: RwLock::new(None),
                    refresh: tokio::sync::Mutex::new(()),
                })
            }),
        };
        if client.auth.is_some() {
            client
                .authenticate()
                .await
                .map_err(|s| format!("etcd authentication failed: {}", describe(&s)))?;
        }
        Ok(client)
    }

    /// One unary call (`path` as in [`proto`]); an expired token is renewed and the call
    /// made once more.
    pub async fn unary<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, Status>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.with_token(|token| {
            let request = self.request(req.clone(), token);
            let mut grpc = self.grpc();
            async move {
                grpc.ready().await.map_err(not_ready)?;
                let codec = ProstCodec::<Req, Resp>::default();
                grpc.unary(request, PathAndQuery::from_static(path), codec)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }

    /// Opens a watch stream with one create request; the stream yields etcd's responses,
    /// starting with the one that confirms the watch.
    pub async fn watch(
        &self,
        create: proto::WatchCreateRequest,
    ) -> Result<Streaming<WatchResponse>, Status> {
        self.with_token(|token| {
            let first = WatchRequest {
                create_request: Some(create.clone()),
            };
            // The request side stays open (pending) for the stream's life: a half-closed
            // stream would tell etcd the client is done.
            let requests = stream::StreamExt::chain(stream::iter([first]), stream::pending());
            let request = self.request(requests, token);
            let mut grpc = self.grpc();
            async move {
                grpc.ready().await.map_err(not_ready)?;
                let codec = ProstCodec::<WatchRequest, WatchResponse>::default();
                grpc.streaming(request, PathAndQuery::from_static(proto::WATCH), codec)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }

    fn grpc(&self) -> Grpc<Channel> {
        Grpc::new(self.channel.clone()).max_decoding_message_size(self.max_message_bytes)
    }

    fn request<T>(&self, message: T, token: Option<AsciiMetadataValue>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if self.require_leader {
            r.metadata_mut()
                .insert("hasleader", MetadataValue::from_static("true"));
        }
        if let Some(t) = token {
            r.metadata_mut().insert("token", t);
        }
        r
    }

    fn token(&self) -> Option<AsciiMetadataValue> {
        let auth = self.auth.as_ref()?;
        auth.token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `call` with the current token; when etcd says the token is no longer valid
    /// (tokens expire after 5 idle minutes by default), authenticates again and retries once.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: Fn(Option<AsciiMetadataValue>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let sent = self.token();
        match call(sent.clone()).await {
            Err(s) if self.auth.is_some() && invalid_token(&s) => {
                self.refresh(sent).await?;
                call(self.token()).await
            }
            other => other,
        }
    }

    /// Authenticates again unless another call already replaced the `stale` token.
    async fn refresh(&self, stale: Option<AsciiMetadataValue>) -> Result<(), Status> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let _one = auth.refresh.lock().await;
        if self.token() != stale {
            return Ok(());
        }
        self.authenticate().await
    }

    async fn authenticate(&self) -> Result<(), Status> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let req = AuthenticateRequest {
            name: auth.name.clone(),
            password: auth.password.clone(),
        };
        let mut grpc = self.grpc();
        grpc.ready().await.map_err(not_ready)?;
        let codec = ProstCodec::<AuthenticateRequest, AuthenticateResponse>::default();
        let resp = grpc
            .unary(
                self.request(req, None),
                PathAndQuery::from_static(proto::AUTHENTICATE),
                codec,
            )
            .await?
            .into_inner();
        let token = resp
            .token
            .parse::<AsciiMetadataValue>()
            .map_err(|_| Status::internal("etcd returned a token that is not ASCII"))?;
        *auth
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
        Ok(())
    }
}

/// A tonic endpoint for one URL, with the connection settings of `options`.
fn endpoint(url: &str, options: &Options) -> Result<Endpoint, String> {
    let url = if url.contains("://") {
        url.to_string()
    } else if options.tls.is_some() {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    };
    let mut e =
        Endpoint::from_shared(url.clone()).map_err(|e| format!("etcd endpoint {url}: {e}"))?;
    if let Some(t) = options.connect_timeout {
        e = e.connect_timeout(t);
    }
    if let Some(k) = options.keep_alive {
        e = e
            .http2_keep_alive_interval(k)
            .keep_alive_timeout(k)
            .keep_alive_while_idle(true);
    }
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(t) = &options.tls {
            if let Some(ca) = &t.ca {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &t.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
        }
        e = e
            .tls_config(tls)
            .map_err(|e| format!("etcd endpoint {url}: TLS: {e}"))?;
    } else if options.tls.is_some() {
        return Err(format!(
            "etcd endpoint {url}: TLS settings need an https:// endpoint"
        ));
    }
    Ok(e)
}

fn not_ready(e: tonic::transport::Error) -> Status {
    Status::unavailable(format!("etcd connection not ready: {e}"))
}

/// etcd refused the token the request carried (expired, or revoked by a restart).
fn invalid_token(s: &Status) -> bool {
    match s.code() {
        Code::Unauthenticated => true,
        Code::Unknown | Code::InvalidArgument => s.message().contains("invalid auth token"),
        _ => false,
    }
}

/// A status in one line: etcd's message, the code, and the transport cause if any.
pub fn describe(s: &Status) -> String {
    let mut text = if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        format!("{} ({:?})", s.message(), s.code())
    };
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}
