# shellcheck shell=bash disable=SC2034
# cluster/lib.sh: pins, paths and helpers of the control-plane scripts (sourced).
#
# The processes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok) are kwokctl's: its binary runtime starts them, keeps their pid files,
# certificates and logs under KWOK_CLUSTER_DIR and stops them. These scripts
# build the binaries (build.sh), hand them to kwokctl with the flags it does not
# set itself (up.sh), and apply what tests need on top.

# ---- pins (change them here only) ------------------------------------------
KUBE_VERSION="v1.35.4"          # k8s.io/kubernetes; staging modules at v0.35.4
ETCD_VERSION="v3.6.16"          # go.etcd.io/etcd/server/v3 (3.6.x pairs with 1.34+)
KWOK_VERSION="v0.8.0"           # sigs.k8s.io/kwok (kwok, kwokctl, kustomize/stage)
CERT_MANAGER_VERSION="v1.21.2"  # github.com/cert-manager/cert-manager (deploy/crds)
GATEWAY_API_VERSION="v1.6.3"    # sigs.k8s.io/gateway-api (config/crd/standard)

# ---- paths -----------------------------------------------------------------
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="$REPO_ROOT/cluster"
STATE_DIR="$REPO_ROOT/.cluster"   # the checkout's (gitignored)
LOG_DIR="$STATE_DIR/logs"
BIN_DIR="$STATE_DIR/bin"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
# Built once per machine, shared by every clone: <component>-<version>/.
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tutor-contrib-eks"
KUBE_BIN_DIR="$CACHE_DIR/kubernetes-$KUBE_VERSION"
ETCD_BIN_DIR="$CACHE_DIR/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$CACHE_DIR/kwok-$KWOK_VERSION"
KWOKCTL_BIN_DIR="$CACHE_DIR/kwokctl-$KWOK_VERSION"
KWOK_STAGES_DIR="$CACHE_DIR/kwok-stages-$KWOK_VERSION/stage"   # kustomize/stage
CERT_MANAGER_DIR="$CACHE_DIR/cert-manager-$CERT_MANAGER_VERSION"
GATEWAY_API_DIR="$CACHE_DIR/gateway-api-crds-$GATEWAY_API_VERSION"

# kwokctl's home is the checkout's .cluster/kwok (not ~/.kwok), its one cluster
# named after the checkout's path: two clones never share or stop each other's.
KWOK_HOME="$STATE_DIR/kwok"
PATH_HASH="$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-8)"
CLUSTER_NAME="tutor-eks-$PATH_HASH"
KWOK_CLUSTER_DIR="$KWOK_HOME/clusters/$CLUSTER_NAME"
KWOKCTL="$BIN_DIR/kwokctl"                 # written by up.sh: bound to this cluster
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)
CLIENTS=(kube-controller-manager kube-scheduler kwok-controller)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s; die naming WHAT on timeout.
wait_until() {
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@"; do
    (( SECONDS < deadline )) || die "$what not ready (logs: $LOG_DIR/components/)"
    sleep 0.2
  done
}

# lock_state: one state-changing script (up, down, apiserver) at a time per checkout.
lock_state() {
  mkdir -p "$STATE_DIR"
  exec 8>"$STATE_DIR/lock"
  flock -n 8 || { log "waiting for another cluster script of this checkout"; flock 8; }
}

# kwokctl ARGS...: this checkout's kwokctl, logging to .cluster/logs/kwokctl.log (the
# tail shown on failure). 8>&-: what kwokctl forks must not hold the lock forever.
kwokctl() {
  mkdir -p "$LOG_DIR"
  printf '### %s kwokctl %s\n' "$(date +%H:%M:%S)" "$*" >>"$LOG_DIR/kwokctl.log"
  "$KWOKCTL" "$@" >>"$LOG_DIR/kwokctl.log" 2>&1 8>&- \
    || { tail -n 5 "$LOG_DIR/kwokctl.log" >&2; die "kwokctl $* failed (log: $LOG_DIR/kwokctl.log)"; }
}

# kwokctl tells a running component by `kill -0 <pid from pids/NAME.pid>` alone, and
# stops it with SIGKILL to that pid. A pid file written before the machine booted
# names a process that is gone, whatever now runs under that pid: forget it.
forget_stale_pids() {
  local boot
  boot="$(awk '/^btime/ {print $2}' /proc/stat)"
  find "$KWOK_CLUSTER_DIR/pids" -name '*.pid' ! -newermt "@$boot" -delete 2>/dev/null || true
}
pid_of() { local p; p="$(cat "$KWOK_CLUSTER_DIR/pids/$1.pid" 2>/dev/null)" && kill -0 "$p" 2>/dev/null && echo "$p"; }
alive() { pid_of "$1" >/dev/null; }

# stop NAME...: SIGTERM each running NAME, SIGKILL what still runs 10 s later
# (kwokctl has no per-component stop: used for the apiserver and its clients).
stop() {
  local name pid pids=() i running
  for name in "$@"; do
    pid="$(pid_of "$name")" && kill "$pid" && pids+=("$pid")
    rm -f "$KWOK_CLUSTER_DIR/pids/$name.pid"
  done
  for ((i = 0; i < 100; i++)); do
    running=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
    (( running )) || return 0
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}
# kwok exits at start when a kind its stages name (Gateway, Certificate ...) is not
# served yet, as on a new cluster or right after the API server restarted (its
# OpenAPI lacks the CRDs for a moment): start it again until it serves /healthz,
# which it does once every stage controller runs.
kwok_up() {
  curl -sfk --max-time 2 "https://127.0.0.1:$(( $(cat "$KWOK_HOME/ports") + 5 ))/healthz" >/dev/null 2>&1 && return 0
  alive kwok-controller || kwokctl start cluster
  return 1
}
