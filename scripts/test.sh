#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages) if missing, then
# formatting, lints, unit/property tests and end-to-end tests through the real binary,
# and the fully static musl build. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
# promtool checks /metrics; the prometheus server scrapes it (tests/tests/observe.rs).
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The etcd provider's tests run a real etcd.
[ -x /usr/bin/etcd ] || need+=(etcd-server)
# Rate limits across a fleet run a real Redis (standalone and Cluster, via redis-cli).
{ [ -x /usr/bin/redis-server ] && [ -x /usr/bin/redis-cli ]; } || need+=(redis-server redis-tools)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installing a server package may start its daemon on its default port; tests use their own ports.
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/strait-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all -- --check
# Layering: the vocabulary and the policy crates build without the trace exporter's stack.
if cargo tree -p strait-core -p strait-policy -e normal | grep -E 'tonic|prost|opentelemetry|hyper '; then
  echo "error: strait-core or strait-policy depends on the crates above" >&2
  exit 1
fi
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests drive this binary ($CARGO_TARGET_DIR/debug/strait).
cargo build -p strait
# The proxy-wasm example plugins that tests/tests/wasm.rs loads.
scripts/build-plugins.sh
# Independent Python clients (HTTP/3, post-quantum TLS); their tests must run, not skip.
scripts/py-tools.sh
export STRAIT_E2E_REQUIRE_PY=1
cargo test --workspace --no-fail-fast
# The request-path suites again with a policy that does nothing on every route: the policy
# pipeline must change no result (tests/src/strait.rs, `with_noop_policy`).
STRAIT_E2E_NOOP_POLICY=1 cargo test -p strait-e2e --no-fail-fast \
  --test routing --test forwarding --test protocols --test errors --test lb \
  --test smuggling --test tls --test paths --test request_head --test resilience

if [ "${STRAIT_SKIP_STATIC:-0}" != 1 ]; then
  scripts/static-build.sh
fi
