# shellcheck shell=bash disable=SC2034
# cluster/lib.sh: pins, paths and helpers shared by the control-plane scripts.
#
# Sourced (not run) by cluster/build.sh, cluster/up.sh, cluster/down.sh and
# cluster/apiserver.sh. It defines:
#   - the pinned versions of every component (change them here only);
#   - CACHE_DIR: per-user cache of built binaries, outside the checkout, so a
#     fresh clone on the same machine reuses them:
#       ${XDG_CACHE_HOME:-$HOME/.cache}/tutor-contrib-eks/<component>-<version>/
#   - STATE_DIR: the checkout's .cluster/ (kubeconfig, certs, etcd data, logs,
#     pid files, bin/ symlinks, crds symlink);
#   - the loopback addresses and ports; everything binds to 127.0.0.1 only.

# ---- pins ------------------------------------------------------------------
KUBE_VERSION="v1.35.4"          # k8s.io/kubernetes; staging modules at v0.35.4
ETCD_VERSION="v3.6.16"          # go.etcd.io/etcd/server/v3 (3.6.x pairs with 1.34+)
KWOK_VERSION="v0.8.0"           # sigs.k8s.io/kwok
CERT_MANAGER_VERSION="v1.21.2"  # github.com/cert-manager/cert-manager (deploy/crds)

# ---- paths -----------------------------------------------------------------
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="$REPO_ROOT/cluster"
STATE_DIR="$REPO_ROOT/.cluster"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
PKI_DIR="$STATE_DIR/pki"
BIN_DIR="$STATE_DIR/bin"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tutor-contrib-eks"

KUBE_BIN_DIR="$CACHE_DIR/kubernetes-$KUBE_VERSION"
ETCD_BIN_DIR="$CACHE_DIR/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$CACHE_DIR/kwok-$KWOK_VERSION"
CERT_MANAGER_DIR="$CACHE_DIR/cert-manager-$CERT_MANAGER_VERSION"

# ---- loopback endpoints (non-default ports) --------------------------------
# Ports come in "slots", so that two checkouts on one machine (a developer's
# and CI's fresh clone) can each run a control plane. Slot 0, the usual one:
#   etcd 23790 (peer 23800), kube-apiserver 16443, kube-controller-manager
#   16257, kube-scheduler 16259, kwok 16260.
# Slot N (1..49): 20000+10N .. 20000+10N+5 in the same order.
# up.sh keeps the slot recorded in .cluster/ports while any process of this
# checkout runs; otherwise it takes the first slot, from the recorded one (or
# 0) upwards, whose ports are all free, and records it. Other scripts read it.
HOST="127.0.0.1"
PORTS_FILE="$STATE_DIR/ports"

set_slot() {
  PORT_SLOT="$1"
  if (( PORT_SLOT == 0 )); then
    ETCD_CLIENT_PORT=23790 ETCD_PEER_PORT=23800 APISERVER_PORT=16443
    CONTROLLER_MANAGER_PORT=16257 SCHEDULER_PORT=16259 KWOK_PORT=16260
  else
    local base=$((20000 + 10 * PORT_SLOT))
    ETCD_CLIENT_PORT=$base ETCD_PEER_PORT=$((base + 1)) APISERVER_PORT=$((base + 2))
    CONTROLLER_MANAGER_PORT=$((base + 3)) SCHEDULER_PORT=$((base + 4)) KWOK_PORT=$((base + 5))
  fi
  SERVER_URL="https://$HOST:$APISERVER_PORT"
}

recorded_slot() {
  local slot=""
  [[ -s "$PORTS_FILE" ]] && slot="$(sed -n 's/^PORT_SLOT=\([0-9]*\)$/\1/p' "$PORTS_FILE")"
  [[ "$slot" =~ ^[0-9]+$ ]] && echo "$slot" || echo 0
}
set_slot "$(recorded_slot)"

SERVICE_CIDR="10.96.0.0/16"     # virtual addresses only; nothing is routed there
CLUSTER_CIDR="10.244.0.0/16"
NODE_NAME="kwok-node-0"

# ---- helpers ---------------------------------------------------------------
log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME: true if .cluster/run/NAME.pid names a live process of THIS
# checkout's cluster (its command line mentions $STATE_DIR), so a recycled pid
# or another clone's cluster is never mistaken for ours.
pid_alive() {
  local f="$RUN_DIR/$1.pid" pid
  [[ -s "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$STATE_DIR"
}

# port_busy PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# port_owner PORT: "pid/command" of the listener on 127.0.0.1:PORT, if visible.
port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n -E 's/.*users:\(\("([^"]+)",pid=([0-9]+).*/\2\/\1/p' | head -1; }

# stop_component NAME [GRACE]: SIGTERM the process in NAME.pid, SIGKILL after
# GRACE seconds (10 by default).
stop_component() {
  local name="$1" f="$RUN_DIR/$1.pid" grace="${2:-10}" pid i
  if pid_alive "$name"; then
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 $((grace * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still running ${grace}s after SIGTERM; sending SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

# our_orphans NAME: pids of processes started for THIS checkout (cmdline names
# $STATE_DIR) whose program is NAME, whatever the pid files say.
our_orphans() {
  local name="$1" d cmd
  for d in /proc/[0-9]*; do
    cmd="$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null)" || continue
    [[ -n "$cmd" ]] || continue
    case "${cmd%% *}" in */"$name") ;; *) continue ;; esac
    [[ "$cmd" == *"$STATE_DIR/"* ]] && echo "${d#/proc/}"
  done
  return 0
}

# kill_orphans NAME: stop NAME processes of this checkout that no pid file tracks.
kill_orphans() {
  local name="$1" pid
  for pid in $(our_orphans "$name"); do
    [[ "$pid" == "$$" ]] && continue
    log "$name: stopping untracked process $pid of this checkout"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# start_component NAME BINARY ARGS...: start detached, log to .cluster/logs/NAME.log.
start_component() {
  local name="$1"; shift
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  # setsid: own session, so the caller's Ctrl-C or job control does not kill it.
  # 8>&- 9>&-: the daemon must not inherit (and so hold forever) the script locks.
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# lock_state: one state-changing script (up.sh, down.sh, apiserver.sh) at a
# time per checkout; a second one waits for the first to finish.
lock_state() {
  mkdir -p "$RUN_DIR"
  exec 8>"$RUN_DIR/lock"
  if ! flock -n 8; then
    log "waiting for another cluster script of this checkout to finish"
    flock -w 1800 8 || die "timed out waiting for the lock $RUN_DIR/lock"
  fi
}

# https_ok URL [CERT KEY]: true if URL answers 200 (TLS verified against our CA).
https_ok() {
  local url="$1"
  if [[ $# -ge 3 ]]; then
    curl -sf --max-time 2 --cacert "$PKI_DIR/ca.crt" --cert "$2" --key "$3" "$url" >/dev/null 2>&1
  else
    curl -sf --max-time 2 --cacert "$PKI_DIR/ca.crt" "$url" >/dev/null 2>&1
  fi
}

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s; die naming WHAT on timeout.
wait_until() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if (( SECONDS >= deadline )); then
      die "$what not ready after ${timeout}s (see $LOG_DIR/)"
    fi
    sleep 0.2
  done
}

# slot_free: true if no port of the current slot accepts connections.
slot_free() {
  local port
  for port in $ETCD_CLIENT_PORT $ETCD_PEER_PORT $APISERVER_PORT $CONTROLLER_MANAGER_PORT \
              $SCHEDULER_PORT $KWOK_PORT; do
    port_busy "$port" && return 1
  done
  return 0
}

record_slot() {
  mkdir -p "$STATE_DIR"
  printf 'PORT_SLOT=%s\nAPISERVER_PORT=%s\nSERVER_URL=%s\n' "$PORT_SLOT" "$APISERVER_PORT" "$SERVER_URL" >"$PORTS_FILE"
}

# choose_slot: (up.sh) keep the recorded slot while one of our processes runs,
# else pick the first free slot from the recorded one upwards; record it.
choose_slot() {
  local name start slot
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    if pid_alive "$name" || [[ -n "$(our_orphans "$name")" ]]; then
      [[ -s "$PORTS_FILE" ]] || record_slot
      return 0
    fi
  done
  start="$(recorded_slot)"
  for ((slot = start; slot < 50; slot++)); do
    set_slot "$slot"
    if slot_free; then
      if (( slot != start )); then
        log "ports of slot $start are taken (another checkout's cluster?); using slot $slot: apiserver $SERVER_URL"
      fi
      record_slot
      return 0
    fi
  done
  set_slot "$start"
  log "no free port slot found; keeping slot $start"
}
