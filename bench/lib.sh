# Shared by bench/tls/handshakes.sh and bench/h3/run.sh (sourced, not run): the raised priority,
# building a load client once, a work directory, and cleanup of what the script started.
#
# Servers and load run at a raised priority (NICE=-10 by default, NICE=0 to turn it off), so that
# other work on the machine (builds) takes less of cores 0 and 1 during the runs. Needs root. With
# sched_autogroup on, a process's nice only counts inside its session's autogroup, so the
# autogroup's own nice (/proc/self/autogroup) is raised too, and restored on exit.
NICE=${NICE:--10}
[ "$(id -u)" = 0 ] || NICE=0
AUTOGROUP_NICE0=
TARGET=${CARGO_TARGET_DIR:-/var/tmp/h3load-target}

# build_client NAME DIR: builds the cargo project in DIR (release, into $TARGET) when its binary
# NAME is missing or older than its source; prints the binary's path.
build_client() {
  local bin="$TARGET/release/$1"
  if [ ! -x "$bin" ] || [ "$2/src/main.rs" -nt "$bin" ]; then
    echo "building $1 into $TARGET ..." >&2
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --manifest-path "$2/Cargo.toml"
  fi
  echo "$bin"
}

# start_work PREFIX: makes $WORK, and on exit stops every pid in PIDS (TERM, then KILL), removes
# $WORK and restores the autogroup's nice.
start_work() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [ "$NICE" != 0 ] && [ -w /proc/self/autogroup ]; then
    AUTOGROUP_NICE0=$(awk '{print $3}' /proc/self/autogroup)
    echo "$NICE" >/proc/self/autogroup 2>/dev/null || AUTOGROUP_NICE0=
  fi
}

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
  if [ -n "$AUTOGROUP_NICE0" ]; then echo "$AUTOGROUP_NICE0" >/proc/self/autogroup 2>/dev/null || true; fi
}
