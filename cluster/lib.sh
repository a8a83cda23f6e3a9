# shellcheck shell=bash disable=SC2034
# cluster/lib.sh: pins, paths and helpers shared by the control-plane scripts.
#
# Sourced (not run) by cluster/build.sh, cluster/up.sh, cluster/down.sh and
# cluster/apiserver.sh. It defines:
#   - the pinned versions of every component (change them here only);
#   - CACHE_DIR: per-user cache of built binaries, outside the checkout, so a
#     fresh clone on the same machine reuses them:
#       ${XDG_CACHE_HOME:-$HOME/.cache}/tutor-contrib-eks/<component>-<version>/
#   - STATE_DIR: the checkout's .cluster/ (kubeconfig, ports, bin/, crds, logs,
#     and kwok/: kwokctl's home, holding this checkout's one kwokctl cluster);
#   - the loopback ports; everything binds to 127.0.0.1 only;
#   - the kwokctl configuration of the cluster (render_kwokctl_config).
#
# The processes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok) are run by kwokctl's binary runtime: it writes their certificates
# (pki/), pid files (pids/), logs (logs/) and configuration (kwok.yaml) under
# KWOK_CLUSTER_DIR. These scripts only choose the ports, hand kwokctl the
# binaries built here, and check what it started.

# ---- pins ------------------------------------------------------------------
KUBE_VERSION="v1.35.4"          # k8s.io/kubernetes; staging modules at v0.35.4
ETCD_VERSION="v3.6.16"          # go.etcd.io/etcd/server/v3 (3.6.x pairs with 1.34+)
KWOK_VERSION="v0.8.0"           # sigs.k8s.io/kwok (kwok and kwokctl)
CERT_MANAGER_VERSION="v1.21.2"  # github.com/cert-manager/cert-manager (deploy/crds)
GATEWAY_API_VERSION="v1.6.3"    # sigs.k8s.io/gateway-api (config/crd/standard)

# ---- paths -----------------------------------------------------------------
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="$REPO_ROOT/cluster"
STATE_DIR="$REPO_ROOT/.cluster"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
BIN_DIR="$STATE_DIR/bin"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tutor-contrib-eks"

KUBE_BIN_DIR="$CACHE_DIR/kubernetes-$KUBE_VERSION"
ETCD_BIN_DIR="$CACHE_DIR/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$CACHE_DIR/kwok-$KWOK_VERSION"
KWOKCTL_BIN_DIR="$CACHE_DIR/kwokctl-$KWOK_VERSION"
CERT_MANAGER_DIR="$CACHE_DIR/cert-manager-$CERT_MANAGER_VERSION"
GATEWAY_API_DIR="$CACHE_DIR/gateway-api-crds-$GATEWAY_API_VERSION"

# kwokctl keeps its clusters in $KWOK_WORKDIR/clusters/<name> (~/.kwok by
# default): here the checkout's .cluster/kwok, under a name unique to the
# checkout, so two clones never share (or stop) each other's cluster.
KWOK_HOME="$STATE_DIR/kwok"
CLUSTER_NAME="tutor-eks-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-8)"
KWOK_CLUSTER_DIR="$KWOK_HOME/clusters/$CLUSTER_NAME"
PKI_DIR="$KWOK_CLUSTER_DIR/pki"           # ca.crt/key, admin.crt/key (kwokctl's)
KWOKCTL_CONFIG="$STATE_DIR/kwokctl.yaml"  # rendered by render_kwokctl_config
CONFIG_STAMP="$KWOK_HOME/config.sha256"   # what the cluster was created from
EGRESS_CONFIG="$STATE_DIR/egress-selector.yaml"
KWOKCTL="$BIN_DIR/kwokctl"                # wrapper written by up.sh (write_kwokctl_wrapper)

# kwokctl's component names, in start order.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)
APISERVER_CLIENTS=(kube-controller-manager kube-scheduler kwok-controller)

# ---- loopback endpoints (non-default ports) --------------------------------
# Ports come in "slots", so that two checkouts on one machine (a developer's
# and CI's fresh clone) can each run a control plane. Slot 0, the usual one:
#   etcd 23790 (peer 23800), kube-apiserver 16443, kube-controller-manager
#   16257, kube-scheduler 16259, kwok 16260.
# Slot N (1..49): 20000+10N .. 20000+10N+5 in the same order.
# up.sh keeps the slot recorded in .cluster/ports while any process of this
# checkout runs; otherwise it takes the first slot, from the recorded one (or
# 0) upwards, whose ports are all free, and records it. The ports are part of
# the kwokctl configuration: a new slot means a new cluster (see up.sh).
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

# slot_ports: "component:port" of every port of the current slot.
slot_ports() {
  echo "etcd:$ETCD_CLIENT_PORT etcd:$ETCD_PEER_PORT kube-apiserver:$APISERVER_PORT" \
       "kube-controller-manager:$CONTROLLER_MANAGER_PORT kube-scheduler:$SCHEDULER_PORT" \
       "kwok-controller:$KWOK_PORT"
}

SERVICE_CIDR="10.96.0.0/16"     # virtual addresses only; nothing is routed there
CLUSTER_CIDR="10.244.0.0/16"
NODE_NAME="kwok-node-0"
SA_ISSUER="https://kubernetes.default.svc.cluster.local"

# ---- helpers ---------------------------------------------------------------
log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# port_busy PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# port_owner PORT: "pid/command" of the listener on 127.0.0.1:PORT, if visible.
port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n -E 's/.*users:\(\("([^"]+)",pid=([0-9]+).*/\2\/\1/p' | head -1; }

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s; die naming WHAT on timeout.
wait_until() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if (( SECONDS >= deadline )); then
      die "$what not ready after ${timeout}s (logs: $LOG_DIR/)"
    fi
    sleep 0.2
  done
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

# kwokctl ARGS...: this checkout's kwokctl cluster; output goes to .cluster/logs/kwokctl.log
# (kwokctl logs JSON lines when not on a terminal). On failure, its tail is shown.
kwokctl() {
  mkdir -p "$LOG_DIR"
  printf '### %s kwokctl %s\n' "$(date +%H:%M:%S)" "$*" >>"$LOG_DIR/kwokctl.log"
  # 8>&- 9>&-: processes kwokctl forks must not inherit (and so hold forever) the script locks.
  if ! "$KWOKCTL" "$@" >>"$LOG_DIR/kwokctl.log" 2>&1 8>&- 9>&-; then
    tail -n 5 "$LOG_DIR/kwokctl.log" >&2
    die "kwokctl $* failed (log: $LOG_DIR/kwokctl.log)"
  fi
}

# ---- the processes kwokctl started -----------------------------------------
# kwokctl tells a running component by `kill -0 <pid from pids/NAME.pid>` only.
# A pid file left by a process that died (or by a machine restart) may name a
# pid reused by an unrelated process, which kwokctl would then take for the
# component (and `kwokctl stop` would kill). component_pid accepts a pid only
# if that process runs this cluster's binary, kwokctl's $KWOK_CLUSTER_DIR/bin/NAME.

# component_pid NAME: print the pid of this checkout's NAME process; false if none.
component_pid() {
  local f="$KWOK_CLUSTER_DIR/pids/$1.pid" pid argv0
  [[ -s "$f" ]] || return 1
  pid="$(cat "$f" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  argv0="$( { tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1; } 2>/dev/null)"
  [[ "$argv0" == "$KWOK_CLUSTER_DIR/bin/$1" ]] || return 1
  echo "$pid"
}
component_alive() { component_pid "$1" >/dev/null; }

# forget_dead_pids: remove pid files that name no process of this cluster, so that
# kwokctl starts those components anew and never signals a stranger.
forget_dead_pids() {
  local f name
  for f in "$KWOK_CLUSTER_DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"
    component_alive "$name" || rm -f "$f"
  done
}

# adopt_orphans: a process running this cluster's binary that no pid file names
# (its pid file was lost) gets its pid file back, so that it is neither started
# twice nor left running by down.sh.
adopt_orphans() {
  local name missing=() d argv0
  for name in "${COMPONENTS[@]}"; do component_alive "$name" || missing+=("$name"); done
  (( ${#missing[@]} )) || return 0
  for d in /proc/[0-9]*; do
    argv0="$( { tr '\0' '\n' <"$d/cmdline" | head -n 1; } 2>/dev/null)" || continue
    for name in "${missing[@]}"; do
      if [[ "$argv0" == "$KWOK_CLUSTER_DIR/bin/$name" ]]; then
        log "$name: found running as pid ${d#/proc/} without a pid file; adopting it"
        mkdir -p "$KWOK_CLUSTER_DIR/pids"
        printf '%s' "${d#/proc/}" >"$KWOK_CLUSTER_DIR/pids/$name.pid"
      fi
    done
  done
  return 0
}

# any_component_alive: true if one process of this cluster runs.
any_component_alive() {
  local name
  for name in "${COMPONENTS[@]}"; do
    component_alive "$name" && return 0
  done
  return 1
}

# stop_component NAME [GRACE]: SIGTERM NAME (by its verified pid), SIGKILL after
# GRACE seconds (10 by default), and forget its pid file.
stop_component() {
  local name="$1" grace="${2:-10}" pid i
  if pid="$(component_pid "$name")"; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still running ${grace}s after SIGTERM; sending SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$KWOK_CLUSTER_DIR/pids/$name.pid"
}

# stop_components NAME...: stop_component for each, in parallel.
stop_components() {
  local name pids=()
  for name in "$@"; do
    if component_alive "$name"; then
      stop_component "$name" &
      pids+=($!)
    fi
  done
  (( ${#pids[@]} == 0 )) || wait "${pids[@]}"
}

# retire_legacy_layout: the scripts before kwokctl ran the processes themselves
# (pid files .cluster/run/<name>.pid, certificates in a .cluster/pki/ folder,
# etcd data in .cluster/etcd/). Stop such processes of THIS checkout (their
# command line names $STATE_DIR) and remove that state, once.
retire_legacy_layout() {
  local name f pid i
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    f="$RUN_DIR/$name.pid"
    [[ -s "$f" ]] || continue
    pid="$(cat "$f" 2>/dev/null)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
       && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$STATE_DIR/"; then
      log "stopping $name (pid $pid) of the control plane's previous layout"
      kill "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  if [[ -d "$STATE_DIR/pki" && ! -L "$STATE_DIR/pki" ]] || [[ -d "$STATE_DIR/etcd" ]]; then
    log "removing the previous layout's state (.cluster/pki, .cluster/etcd)"
    rm -rf "$STATE_DIR/pki" "$STATE_DIR/etcd"
  fi
  return 0
}

# stop_cluster: stop every process of this cluster, clients of the apiserver
# first (together), then the apiserver, then etcd, and wait until their ports
# are closed; then let kwokctl tidy its pid files.
stop_cluster() {
  local spec deadline name running=()
  forget_dead_pids
  adopt_orphans
  for name in "${COMPONENTS[@]}"; do component_alive "$name" && running+=("$name"); done
  stop_components "${APISERVER_CLIENTS[@]}"
  stop_components kube-apiserver
  stop_components etcd
  forget_dead_pids
  if [[ -x "$KWOKCTL" && -s "$KWOK_CLUSTER_DIR/kwok.yaml" ]]; then
    kwokctl stop cluster
  fi
  (( ${#running[@]} )) || return 0
  deadline=$((SECONDS + 10))
  for spec in $(slot_ports); do
    [[ " ${running[*]} " == *" ${spec%%:*} "* ]] || continue
    while port_busy "${spec##*:}" && (( SECONDS < deadline )); do sleep 0.1; done
  done
}

# ---- health probes ---------------------------------------------------------
apiserver_ready() {
  curl -sf --max-time 2 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" \
    --key "$PKI_DIR/admin.key" "$SERVER_URL/readyz" >/dev/null 2>&1
}
# The controller-manager and scheduler serve /healthz with a self-signed
# certificate they make in memory; kwok serves it with kwokctl's admin certificate.
healthz_ok() { curl -sfk --max-time 2 "https://$HOST:$1/healthz" >/dev/null 2>&1; }
component_healthy() {
  case "$1" in
    etcd)
      curl -sf --max-time 2 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" \
        --key "$PKI_DIR/admin.key" "https://$HOST:$ETCD_CLIENT_PORT/health" 2>/dev/null \
        | grep -q '"health":"true"' ;;
    kube-apiserver) apiserver_ready ;;
    kube-controller-manager) healthz_ok "$CONTROLLER_MANAGER_PORT" ;;
    kube-scheduler) healthz_ok "$SCHEDULER_PORT" ;;
    kwok-controller) healthz_ok "$KWOK_PORT" ;;
  esac
}

# wait_healthy TIMEOUT NAME...: wait until each NAME answers its health probe;
# die with the tail of its log if it exits or times out.
wait_healthy() {
  local timeout="$1" name deadline log_file; shift
  deadline=$((SECONDS + timeout))
  for name in "$@"; do
    log_file="$KWOK_CLUSTER_DIR/logs/$name.log"
    until component_healthy "$name"; do
      if ! component_alive "$name"; then
        tail -n 20 "$log_file" >&2 2>/dev/null || true
        die "$name exited during startup (log: $log_file)"
      fi
      if (( SECONDS >= deadline )); then
        tail -n 20 "$log_file" >&2 2>/dev/null || true
        die "$name not healthy after ${timeout}s (log: $log_file)"
      fi
      sleep 0.2
    done
  done
}

# ---- ports -----------------------------------------------------------------
# slot_free: true if no port of the current slot accepts connections.
slot_free() {
  local spec
  for spec in $(slot_ports); do
    port_busy "${spec##*:}" && return 1
  done
  return 0
}

record_slot() {
  mkdir -p "$STATE_DIR"
  printf 'PORT_SLOT=%s\nAPISERVER_PORT=%s\nSERVER_URL=%s\nKWOK_CLUSTER=%s\n' \
    "$PORT_SLOT" "$APISERVER_PORT" "$SERVER_URL" "$CLUSTER_NAME" >"$PORTS_FILE"
}

# choose_slot: (up.sh) keep the recorded slot while one of our processes runs,
# else pick the first free slot from the recorded one upwards; record it.
choose_slot() {
  local start slot
  if any_component_alive; then
    [[ -s "$PORTS_FILE" ]] || record_slot
    return 0
  fi
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

# refuse_foreign_ports: every port of a component of ours that is not running
# must be free; otherwise die naming the process that holds it (and, for
# another clone's control plane, that clone).
refuse_foreign_ports() {
  local spec name port owner pid other
  for spec in $(slot_ports); do
    name="${spec%%:*}" port="${spec##*:}"
    component_alive "$name" && continue
    port_busy "$port" || continue
    owner="$(port_owner "$port")"
    pid="${owner%%/*}" other=""
    if [[ "$pid" =~ ^[0-9]+$ ]]; then
      other="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -o '/[^ =]*/\.cluster/' | head -1 || true)"
    fi
    if [[ "$other" == "$STATE_DIR/" ]]; then
      die "$name: 127.0.0.1:$port is taken by pid $pid of this checkout that no pid file names; stop it (kill $pid) and retry"
    elif [[ -n "$other" ]]; then
      die "$name: 127.0.0.1:$port is taken by pid $pid, the control plane of another checkout ($other); stop it with 'bash ${other%/.cluster/}/cluster/down.sh'"
    fi
    die "$name: 127.0.0.1:$port is already in use by ${owner:-an unknown process}; free the port and rerun"
  done
}

# ---- kwokctl configuration -------------------------------------------------
# write_egress_config: the kube-apiserver may only ever dial 127.0.0.1 (etcd).
# Its "cluster" egress (logs, exec, port-forward, pods/proxy, services/proxy,
# webhooks behind a Service) and its "controlplane" egress (webhooks by URL) go
# through a Unix socket that does not exist, so such a request fails at once,
# locally, instead of reaching a fake node or pod address.
write_egress_config() {
  local sock="$RUN_DIR/no-egress.sock"
  mkdir -p "$RUN_DIR"
  rm -f "$sock"
  cat >"$EGRESS_CONFIG" <<EOF
apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: $sock
- name: controlplane
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: $sock
EOF
}

# render_kwokctl_config FILE: the KwokctlConfiguration of this checkout's cluster
# for the current slot. kwokctl makes the command lines of every component
# from `options`; `componentsPatches` then adds (or, with override, replaces)
# single flags. kwokctl's own defaults kept: one CA and one admin certificate
# (CN kwok-admin, O system:masters) in pki/, used by every component, as the
# apiserver's serving certificate and as the service-account signing key;
# authorization Node,RBAC; the default admission plugins; leader election off
# is added here. Changed here:
#   etcd          TLS with client certificates (kwokctl's default is plain HTTP),
#                 no fsync (a disposable test cluster: faster), 2 GiB quota
#   apiserver     the aggregation layer's request-header flags, NodeRestriction,
#                 the service CIDR, no endpoint reconciler (127.0.0.1 is not a
#                 valid endpoint), no egress (write_egress_config)
#   controller-manager  signs CSRs with the cluster CA, node CIDRs off
#   kwok          no node Lease (so a restarted kwok acts on pods at once instead
#                 of waiting ~40 s for its predecessor's Lease to expire; the node
#                 stays Ready through the node-heartbeat stage), node IP 127.0.0.1,
#                 only nodes annotated kwok.x-k8s.io/node=fake (cluster/bootstrap.yaml)
render_kwokctl_config() {
  local file="$1" pki="$PKI_DIR"
  local etcd_url="https://$HOST:$ETCD_CLIENT_PORT" peer_url="https://$HOST:$ETCD_PEER_PORT"
  cat >"$file" <<EOF
# Generated by cluster/lib.sh (render_kwokctl_config) for $REPO_ROOT; do not edit.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: $HOST
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  quietPull: true
  cacheDir: $KWOK_HOME/cache
  kubeApiserverPort: $APISERVER_PORT
  etcdPort: $ETCD_CLIENT_PORT
  etcdPeerPort: $ETCD_PEER_PORT
  kubeControllerManagerPort: $CONTROLLER_MANAGER_PORT
  kubeSchedulerPort: $SCHEDULER_PORT
  kwokControllerPort: $KWOK_PORT
  etcdQuotaBackendSize: 2Gi
  kubeVersion: $KUBE_VERSION
  etcdBinary: $ETCD_BIN_DIR/etcd
  kubeApiserverBinary: $KUBE_BIN_DIR/kube-apiserver
  kubeControllerManagerBinary: $KUBE_BIN_DIR/kube-controller-manager
  kubeSchedulerBinary: $KUBE_BIN_DIR/kube-scheduler
  kubectlBinary: $KUBE_BIN_DIR/kubectl
  kwokControllerBinary: $KWOK_BIN_DIR/kwok
componentsPatches:
- name: etcd
  extraArgs:
  - {key: listen-client-urls, value: "$etcd_url", override: true}
  - {key: advertise-client-urls, value: "$etcd_url", override: true}
  - {key: listen-peer-urls, value: "$peer_url", override: true}
  - {key: initial-advertise-peer-urls, value: "$peer_url", override: true}
  - {key: initial-cluster, value: "node0=$peer_url", override: true}
  - {key: cert-file, value: "$pki/admin.crt"}
  - {key: key-file, value: "$pki/admin.key"}
  - {key: client-cert-auth, value: "true"}
  - {key: trusted-ca-file, value: "$pki/ca.crt"}
  - {key: peer-cert-file, value: "$pki/admin.crt"}
  - {key: peer-key-file, value: "$pki/admin.key"}
  - {key: peer-client-cert-auth, value: "true"}
  - {key: peer-trusted-ca-file, value: "$pki/ca.crt"}
  - {key: unsafe-no-fsync, value: "true"}
  - {key: snapshot-count, value: "10000"}
  - {key: log-level, value: warn}
- name: kube-apiserver
  extraArgs:
  - {key: etcd-servers, value: "$etcd_url", override: true}
  - {key: etcd-cafile, value: "$pki/ca.crt"}
  - {key: etcd-certfile, value: "$pki/admin.crt"}
  - {key: etcd-keyfile, value: "$pki/admin.key"}
  - {key: advertise-address, value: "$HOST"}
  - {key: enable-admission-plugins, value: NodeRestriction}
  - {key: service-cluster-ip-range, value: "$SERVICE_CIDR"}
  - {key: service-account-issuer, value: "$SA_ISSUER", override: true}
  - {key: api-audiences, value: "$SA_ISSUER"}
  - {key: endpoint-reconciler-type, value: none}
  - {key: egress-selector-config-file, value: "$EGRESS_CONFIG"}
  - {key: requestheader-client-ca-file, value: "$pki/ca.crt"}
  - {key: requestheader-allowed-names, value: kwok-admin}
  - {key: requestheader-username-headers, value: X-Remote-User}
  - {key: requestheader-group-headers, value: X-Remote-Group}
  - {key: requestheader-extra-headers-prefix, value: X-Remote-Extra-}
  - {key: profiling, value: "false"}
- name: kube-controller-manager
  extraArgs:
  - {key: leader-elect, value: "false"}
  - {key: controllers, value: "*"}
  - {key: service-cluster-ip-range, value: "$SERVICE_CIDR"}
  - {key: cluster-cidr, value: "$CLUSTER_CIDR"}
  - {key: allocate-node-cidrs, value: "false"}
  - {key: cluster-signing-cert-file, value: "$pki/ca.crt"}
  - {key: cluster-signing-key-file, value: "$pki/ca.key"}
  - {key: feature-gates, value: WatchListClient=false}
  - {key: profiling, value: "false"}
- name: kube-scheduler
  extraArgs:
  - {key: leader-elect, value: "false"}
  - {key: profiling, value: "false"}
- name: kwok-controller
  extraArgs:
  - {key: node-lease-duration-seconds, value: "0", override: true}
  - {key: node-ip, value: "$HOST", override: true}
  - {key: node-name, value: "$NODE_NAME", override: true}
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
  - {key: cidr, value: "$CLUSTER_CIDR"}
EOF
}

# config_digest: what the cluster is made from (the rendered configuration, the
# stages, kwokctl's version). up.sh recreates the cluster when it changes.
config_digest() {
  { cat "$KWOKCTL_CONFIG" "$CLUSTER_DIR/kwok-stages.yaml"; echo "kwokctl $KWOK_VERSION"; } | sha256sum | cut -c1-64
}
