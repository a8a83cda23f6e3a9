# shellcheck shell=bash disable=SC2034
# cluster/components.sh: how each control-plane process is started and probed.
#
# Sourced by cluster/up.sh and cluster/apiserver.sh after cluster/lib.sh.
# Every process binds to 127.0.0.1 only, logs to .cluster/logs/<name>.log and
# records its pid in .cluster/run/<name>.pid. ensure_<name> leaves a healthy
# process alone and (re)starts a dead or unhealthy one.

ETCD_DATA_DIR="$STATE_DIR/etcd"
EGRESS_CONFIG="$STATE_DIR/egress-selector.yaml"

# ---- health probes ---------------------------------------------------------
etcd_healthy() {
  curl -sf --max-time 2 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/apiserver-etcd-client.crt" \
    --key "$PKI_DIR/apiserver-etcd-client.key" "https://$HOST:$ETCD_CLIENT_PORT/health" 2>/dev/null \
    | grep -q '"health":"true"'
}
apiserver_ready() { https_ok "$SERVER_URL/readyz" "$PKI_DIR/admin.crt" "$PKI_DIR/admin.key"; }
controller_manager_healthy() { https_ok "https://$HOST:$CONTROLLER_MANAGER_PORT/healthz"; }
scheduler_healthy() { https_ok "https://$HOST:$SCHEDULER_PORT/healthz"; }
kwok_healthy() { curl -sf --max-time 2 "http://$HOST:$KWOK_PORT/healthz" >/dev/null 2>&1; }

# refuse_foreign_port NAME PORT: die if a process that is not ours holds PORT,
# naming it (and, for another clone's control plane, that clone's .cluster/).
refuse_foreign_port() {
  local name="$1" port="$2" owner pid other=""
  port_busy "$port" || return 0
  owner="$(port_owner "$port")"
  pid="${owner%%/*}"
  if [[ "$pid" =~ ^[0-9]+$ ]]; then
    other="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -o '/[^ =]*/\.cluster/' | head -1 || true)"
  fi
  if [[ "$other" == "$STATE_DIR/" ]]; then
    die "$name: 127.0.0.1:$port is taken by pid $pid of this checkout that no pid file names; run 'bash cluster/down.sh' and retry"
  elif [[ -n "$other" ]]; then
    die "$name: 127.0.0.1:$port is taken by pid $pid, the control plane of another checkout ($other); stop it with 'bash ${other%/.cluster/}/cluster/down.sh'"
  fi
  die "$name: 127.0.0.1:$port is already in use by ${owner:-an unknown process}; free the port and rerun"
}

# preflight_ports: before starting anything, every port that one of our
# processes is not holding must be free.
preflight_ports() {
  local spec name port
  for spec in etcd:$ETCD_CLIENT_PORT etcd:$ETCD_PEER_PORT kube-apiserver:$APISERVER_PORT \
              kube-controller-manager:$CONTROLLER_MANAGER_PORT kube-scheduler:$SCHEDULER_PORT kwok:$KWOK_PORT; do
    name="${spec%%:*}"; port="${spec##*:}"
    pid_alive "$name" && continue
    kill_orphans "$name"
    refuse_foreign_port "$name" "$port"
  done
}

# ensure NAME PROBE TIMEOUT STARTFN PORT: keep a healthy NAME, else restart it.
# Sets ENSURE_STARTED=1 when it had to start the process, 0 when it kept it.
ENSURE_STARTED=0
ensure() {
  local name="$1" probe="$2" timeout="$3" startfn="$4" port="$5"
  ENSURE_STARTED=0
  if pid_alive "$name" && "$probe"; then
    return 0
  fi
  if pid_alive "$name"; then
    # Alive but not healthy: give a just-started process a moment before restarting it.
    local deadline=$((SECONDS + timeout))
    while pid_alive "$name" && ! "$probe" && (( SECONDS < deadline )); do sleep 0.2; done
    "$probe" && return 0
    log "$name: running but unhealthy; restarting"
  fi
  stop_component "$name"
  kill_orphans "$name"
  refuse_foreign_port "$name" "$port"
  log "$name: starting"
  ENSURE_STARTED=1
  "$startfn"
  local deadline=$((SECONDS + timeout))
  local pid
  pid="$(cat "$RUN_DIR/$name.pid")"
  until "$probe"; do
    # kill -0, not pid_alive: just after the fork, /proc/PID/cmdline can still
    # be the shell's, before the exec of the component.
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited during startup (log: $LOG_DIR/$name.log)"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name not healthy after ${timeout}s (log: $LOG_DIR/$name.log)"
    fi
    sleep 0.2
  done
}

# APISERVER_CLIENTS: the processes that watch the apiserver. When the apiserver
# has just been (re)started they are restarted as well: a starting apiserver
# serves requests a moment before its RBAC cache is filled, answers their
# watches 403, and their informers then sit in back-off for up to a minute
# (new namespaces got no default ServiceAccount, pods were not scheduled).
APISERVER_CLIENTS=(kube-controller-manager kube-scheduler kwok)

stop_apiserver_clients() {
  local name pids=()
  for name in "${APISERVER_CLIENTS[@]}"; do
    if pid_alive "$name"; then
      log "$name: restarting, since kube-apiserver was (re)started"
      stop_component "$name" &
      pids+=($!)
    fi
  done
  # Wait for these stops only: a bare `wait` would also wait for the
  # control-plane processes this shell has just started.
  (( ${#pids[@]} == 0 )) || wait "${pids[@]}"
}

ensure_apiserver_clients() {
  ensure kube-controller-manager controller_manager_healthy 60 start_controller_manager "$CONTROLLER_MANAGER_PORT"
  ensure kube-scheduler scheduler_healthy 60 start_scheduler "$SCHEDULER_PORT"
  ensure kwok kwok_healthy 30 start_kwok "$KWOK_PORT"
}

# ---- start functions (detached; see start_component in lib.sh) --------------
# --unsafe-no-fsync: this is a disposable test cluster; skipping fsync makes
# every write (and so every test) faster. Data survives a clean stop, not a
# machine crash.
start_etcd() {
  mkdir -p "$ETCD_DATA_DIR"; chmod 700 "$ETCD_DATA_DIR"
  start_component etcd "$ETCD_BIN_DIR/etcd" \
    --name=tutor-eks-local \
    --data-dir="$ETCD_DATA_DIR" \
    --listen-client-urls="https://$HOST:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="https://$HOST:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="https://$HOST:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="https://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster="tutor-eks-local=https://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --cert-file="$PKI_DIR/etcd-server.crt" --key-file="$PKI_DIR/etcd-server.key" \
    --client-cert-auth --trusted-ca-file="$PKI_DIR/ca.crt" \
    --peer-cert-file="$PKI_DIR/etcd-server.crt" --peer-key-file="$PKI_DIR/etcd-server.key" \
    --peer-client-cert-auth --peer-trusted-ca-file="$PKI_DIR/ca.crt" \
    --quota-backend-bytes=2147483648 \
    --snapshot-count=10000 \
    --unsafe-no-fsync \
    --log-level=warn
}

# The kube-apiserver may only ever dial 127.0.0.1 (etcd). Its "cluster" egress
# (logs, exec, port-forward, pods/proxy, services/proxy, webhooks behind a
# Service) and its "controlplane" egress (webhooks by URL) go through a Unix
# socket that does not exist, so such a request fails at once, locally,
# instead of reaching a fake node or pod address.
write_egress_config() {
  local sock="$RUN_DIR/no-egress.sock"
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

start_apiserver() {
  write_egress_config
  start_component kube-apiserver "$KUBE_BIN_DIR/kube-apiserver" \
    --bind-address="$HOST" --advertise-address="$HOST" --secure-port="$APISERVER_PORT" \
    --etcd-servers="https://$HOST:$ETCD_CLIENT_PORT" \
    --etcd-cafile="$PKI_DIR/ca.crt" \
    --etcd-certfile="$PKI_DIR/apiserver-etcd-client.crt" --etcd-keyfile="$PKI_DIR/apiserver-etcd-client.key" \
    --tls-cert-file="$PKI_DIR/apiserver.crt" --tls-private-key-file="$PKI_DIR/apiserver.key" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer="https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --api-audiences="https://kubernetes.default.svc.cluster.local" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --endpoint-reconciler-type=none \
    --egress-selector-config-file="$EGRESS_CONFIG" \
    --allow-privileged=true \
    --cert-dir="$PKI_DIR/apiserver-generated" \
    --profiling=false \
    --v=1
}

start_controller_manager() {
  start_component kube-controller-manager "$KUBE_BIN_DIR/kube-controller-manager" \
    --bind-address="$HOST" --secure-port="$CONTROLLER_MANAGER_PORT" \
    --tls-cert-file="$PKI_DIR/controller-manager.crt" --tls-private-key-file="$PKI_DIR/controller-manager.key" \
    --kubeconfig="$PKI_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI_DIR/controller-manager.kubeconfig" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --service-account-private-key-file="$PKI_DIR/sa.key" \
    --root-ca-file="$PKI_DIR/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --cluster-cidr="$CLUSTER_CIDR" --allocate-node-cidrs=false \
    --controllers='*' \
    --feature-gates=WatchListClient=false \
    --leader-elect=false \
    --profiling=false \
    --v=1
}

start_scheduler() {
  start_component kube-scheduler "$KUBE_BIN_DIR/kube-scheduler" \
    --bind-address="$HOST" --secure-port="$SCHEDULER_PORT" \
    --tls-cert-file="$PKI_DIR/scheduler.crt" --tls-private-key-file="$PKI_DIR/scheduler.key" \
    --kubeconfig="$PKI_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$PKI_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$PKI_DIR/scheduler.kubeconfig" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --leader-elect=false \
    --profiling=false \
    --v=1
}

start_kwok() {
  mkdir -p "$STATE_DIR/kwok"
  # A new kwok process has a new holder identity: it would wait for the node
  # Lease of the previous one to expire (~40 s) before acting on any pod.
  # Hand it over at once by deleting that Lease (kwok recreates it).
  "$KUBE_BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_FILE" -n kube-node-lease \
    delete lease "$NODE_NAME" --ignore-not-found --wait=false >>"$LOG_DIR/kwok.log" 2>&1 || true
  export KWOK_WORKDIR="$STATE_DIR/kwok"
  start_component kwok "$KWOK_BIN_DIR/kwok" \
    --kubeconfig="$PKI_DIR/kwok.kubeconfig" \
    --config="$CLUSTER_DIR/kwok-stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip="$HOST" \
    --cidr="10.244.0.0/16" \
    --node-lease-duration-seconds=40 \
    --server-address="$HOST:$KWOK_PORT"
}
