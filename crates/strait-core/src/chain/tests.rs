//! Chain semantics under paused time: order, short-circuit, which hooks run, the denying filter, per-request state.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::*;
use crate::filter::{BodyFlow, Hooks};

type Log = Arc<Mutex<Vec<String>>>;

/// A filter that logs every hook it runs and does what it is told on requests.
struct Probe {
    name: &'static str,
    log: Log,
    deny: bool,
    wait: Option<Duration>,
}

impl Probe {
    fn new(name: &'static str, log: &Log) -> Self {
        Probe {
            name,
            log: log.clone(),
            deny: false,
            wait: None,
        }
    }
    fn log(&self, hook: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{hook}", self.name));
    }
}

/// State a probe keeps between hooks: counts how many of its hooks saw it.
struct Seen(u32);

impl Filter for Probe {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &'static str {
        "probe"
    }
    fn hooks(&self) -> Hooks {
        Hooks {
            response: true,
            end: true,
            request_body: false,
            response_body: false,
        }
    }
    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        self.log("request");
        state.set(Seen(1));
        if let Some(d) = self.wait {
            // Borrows the request and the state across the wait, then edits both.
            return Flow::wait(async move {
                tokio::time::sleep(d).await;
                ctx.head
                    .headers
                    .insert("x-waited", HeaderValue::from_static(self.name));
                state.get_mut::<Seen>().unwrap().0 += 10;
                if self.deny {
                    Decision::Reply(Reply::text(StatusCode::FORBIDDEN, "no\n", "denied"))
                } else {
                    Decision::Continue
                }
            });
        }
        if self.deny {
            return Flow::Reply(Reply::text(StatusCode::FORBIDDEN, "no\n", "denied"));
        }
        Flow::Continue
    }
    fn on_response<'a>(
        &'a self,
        _ctx: &'a mut ResponseCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let seen = state.get_mut::<Seen>().map(|s| {
            s.0 += 1;
            s.0
        });
        self.log(&format!("response({seen:?})"));
        Flow::Continue
    }
    fn on_end(&self, outcome: &Outcome<'_>, state: &mut FilterState) {
        let seen = state.get::<Seen>().map(|s| s.0);
        self.log(&format!("end({},{seen:?})", outcome.status));
    }
}

fn parts() -> http::request::Parts {
    http::Request::new(()).into_parts().0
}

fn req_ctx(head: &mut http::request::Parts) -> RequestCtx<'_> {
    RequestCtx {
        head,
        client: SocketAddr::from(([127, 0, 0, 1], 1)),
        listener: "web",
        route: "r",
        tls: false,
        peer: None,
    }
}

async fn respond_and_end(chain: &Chain, run: &mut ChainRun, status: u16) {
    let mut head = http::Response::new(()).into_parts().0;
    let method = http::Method::GET;
    let uri = http::Uri::from_static("/");
    let mut ctx = ResponseCtx {
        head: &mut head,
        method: &method,
        uri: &uri,
        route: "r",
        upstream: None,
        local: false,
    };
    assert!(chain.on_response(&mut ctx, run).await.is_none());
    chain.on_end(
        &Outcome {
            status,
            ..Outcome::default()
        },
        run,
    );
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test(start_paused = true)]
async fn hooks_run_in_order_and_back_in_reverse_with_state_kept() {
    let log = Log::default();
    let chain = Chain::new(vec![
        Arc::new(Probe::new("a", &log)),
        Arc::new(Probe::new("b", &log)),
    ]);
    let mut head = parts();
    let mut run = ChainRun::default();
    assert!(chain
        .on_request(&mut req_ctx(&mut head), &mut run)
        .await
        .is_none());
    respond_and_end(&chain, &mut run, 200).await;
    assert_eq!(
        take(&log),
        [
            "a:request",
            "b:request",
            "b:response(Some(2))",
            "a:response(Some(2))",
            "b:end(200,Some(2))",
            "a:end(200,Some(2))"
        ]
    );
    assert_eq!(chain.denied_by(&run), None);
}

#[tokio::test(start_paused = true)]
async fn a_reply_stops_the_chain_and_only_filters_that_ran_see_later_hooks() {
    let log = Log::default();
    let mut deny = Probe::new("b", &log);
    deny.deny = true;
    let chain = Chain::new(vec![
        Arc::new(Probe::new("a", &log)),
        Arc::new(deny),
        Arc::new(Probe::new("c", &log)),
    ]);
    let mut head = parts();
    let mut run = ChainRun::default();
    let reply = chain
        .on_request(&mut req_ctx(&mut head), &mut run)
        .await
        .expect("b replies");
    assert_eq!(reply.response.status(), 403);
    assert_eq!(
        (chain.denied_by(&run), run.reason()),
        (Some("b"), Some("denied"))
    );
    respond_and_end(&chain, &mut run, 403).await;
    let log = take(&log);
    assert!(!log.iter().any(|l| l.starts_with("c:")), "{log:?}");
    assert_eq!(
        log,
        [
            "a:request",
            "b:request",
            "b:response(Some(2))",
            "a:response(Some(2))",
            "b:end(403,Some(2))",
            "a:end(403,Some(2))"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_filter_edits_the_request_after_its_io_and_keeps_state() {
    let log = Log::default();
    let mut slow = Probe::new("slow", &log);
    slow.wait = Some(Duration::from_secs(5));
    let chain = Chain::new(vec![Arc::new(slow), Arc::new(Probe::new("next", &log))]);
    let mut head = parts();
    let mut run = ChainRun::default();
    let started = tokio::time::Instant::now();
    assert!(chain
        .on_request(&mut req_ctx(&mut head), &mut run)
        .await
        .is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(head.headers["x-waited"], "slow");
    respond_and_end(&chain, &mut run, 200).await;
    assert!(take(&log).contains(&"slow:end(200,Some(12))".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_filter_can_deny_after_its_io() {
    let log = Log::default();
    let mut slow = Probe::new("slow", &log);
    slow.wait = Some(Duration::from_millis(10));
    slow.deny = true;
    let chain = Chain::new(vec![Arc::new(slow), Arc::new(Probe::new("next", &log))]);
    let mut head = parts();
    let mut run = ChainRun::default();
    let reply = chain.on_request(&mut req_ctx(&mut head), &mut run).await;
    assert_eq!(reply.map(|r| r.response.status().as_u16()), Some(403));
    assert_eq!(chain.denied_by(&run), Some("slow"));
    assert_eq!(take(&log), ["slow:request"]);
}

/// A filter that only has a request hook and keeps nothing.
struct Quiet;

impl Filter for Quiet {
    fn name(&self) -> &str {
        "quiet"
    }
    fn kind(&self) -> &'static str {
        "quiet"
    }
    fn on_request<'a>(&'a self, _: &'a mut RequestCtx<'_>, _: &'a mut FilterState) -> Flow<'a> {
        Flow::Continue
    }
}

#[tokio::test(start_paused = true)]
async fn a_stateless_filter_stores_nothing_and_skips_unwanted_hooks() {
    let chain = Chain::new(vec![Arc::new(Quiet), Arc::new(Quiet)]);
    assert_eq!(chain.hooks(), Hooks::REQUEST);
    let mut head = parts();
    let mut run = ChainRun::default();
    assert!(chain
        .on_request(&mut req_ctx(&mut head), &mut run)
        .await
        .is_none());
    assert_eq!(run.ran(), 2);
    assert!(run.states.is_empty(), "no state was allocated");
    respond_and_end(&chain, &mut run, 200).await;
}

/// Replies on the response: the replacement head is visible to earlier filters.
struct Rewriter;

impl Filter for Rewriter {
    fn name(&self) -> &str {
        "rewriter"
    }
    fn kind(&self) -> &'static str {
        "rewriter"
    }
    fn hooks(&self) -> Hooks {
        Hooks {
            response: true,
            ..Hooks::REQUEST
        }
    }
    fn on_request<'a>(&'a self, _: &'a mut RequestCtx<'_>, _: &'a mut FilterState) -> Flow<'a> {
        Flow::Continue
    }
    fn on_response<'a>(&'a self, _: &'a mut ResponseCtx<'_>, _: &'a mut FilterState) -> Flow<'a> {
        Flow::Reply(Reply::text(
            StatusCode::BAD_GATEWAY,
            "replaced\n",
            "replaced",
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn a_response_reply_replaces_head_and_body_and_is_recorded() {
    let log = Log::default();
    let chain = Chain::new(vec![Arc::new(Probe::new("a", &log)), Arc::new(Rewriter)]);
    let mut head = parts();
    let mut run = ChainRun::default();
    chain.on_request(&mut req_ctx(&mut head), &mut run).await;
    let mut resp = http::Response::new(()).into_parts().0;
    let (method, uri) = (http::Method::GET, http::Uri::from_static("/"));
    let mut ctx = ResponseCtx {
        head: &mut resp,
        method: &method,
        uri: &uri,
        route: "r",
        upstream: None,
        local: false,
    };
    let body = chain.on_response(&mut ctx, &mut run).await;
    assert!(ctx.local);
    assert_eq!(body, Some(Bytes::from_static(b"replaced\n")));
    assert_eq!(resp.status, 502);
    assert_eq!(chain.denied_by(&run), Some("rewriter"));
}

/// Upper-cases the body it sees, holding everything until the end.
struct Upper(Vec<u8>);

impl BodyFilter for Upper {
    fn on_data(&mut self, data: Bytes, end: bool) -> BodyFlow {
        self.0.extend(data.to_ascii_uppercase());
        if end {
            BodyFlow::Pass(Bytes::from(std::mem::take(&mut self.0)))
        } else {
            BodyFlow::Hold
        }
    }
}

#[test]
fn a_body_filter_may_hold_chunks_until_the_end() {
    let mut f = Upper(Vec::new());
    assert!(matches!(
        f.on_data(Bytes::from_static(b"ab"), false),
        BodyFlow::Hold
    ));
    match f.on_data(Bytes::from_static(b"c"), true) {
        BodyFlow::Pass(b) => assert_eq!(b, "ABC"),
        other => panic!("{other:?}"),
    }
}
