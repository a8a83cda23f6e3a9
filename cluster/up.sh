#!/usr/bin/env bash
# cluster/up.sh: start (or repair) the local Kubernetes control plane.  `make cluster-up`
#
# A real control plane on 127.0.0.1, no container runtime:
#   etcd (https 127.0.0.1:23790, peer :23800, client certs required)
#   kube-apiserver (https://127.0.0.1:16443, Node+RBAC, service-account tokens)
#   kube-controller-manager (:16257) and kube-scheduler (:16259)
#   kwok (:16260) playing the kubelet of one fake node, kwok-node-0: pods become
#   Running/Ready, Job pods Succeeded, PVCs of the default StorageClass bind.
# (Those are slot 0's ports; when another checkout's cluster holds them, up.sh
# moves this one to a free slot: see lib.sh. .cluster/kubeconfig and
# .cluster/ports always name the ports in use.)
# Binaries come from cluster/build.sh (built once per machine into
# ${XDG_CACHE_HOME:-$HOME/.cache}/tutor-contrib-eks/; the first build takes a while).
#
# State lives in the checkout's .cluster/ (gitignored):
#   kubeconfig   admin kubeconfig (client cert in system:masters)
#   ports        the port slot in use (PORT_SLOT, APISERVER_PORT, SERVER_URL)
#   bin/         kubectl, kube-*, etcd, kwok symlinks: put "$PWD/.cluster/bin" first on PATH
#   crds/        cert-manager's CRDs (symlink into the cache)
#   env.sh       `source .cluster/env.sh` sets KUBECONFIG and PATH
#   logs/ pki/ run/ etcd/
# Idempotent: healthy processes are kept, dead or stale ones restarted, and the
# bootstrap objects (cluster/bootstrap.yaml, cert-manager CRDs) re-applied.
# Stop with cluster/down.sh (`make cluster-down`).
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster/pki.sh
source "$CLUSTER_DIR/pki.sh"
# shellcheck source=cluster/components.sh
source "$CLUSTER_DIR/components.sh"

T0=$SECONDS
mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR" "$BIN_DIR"
lock_state
[[ "$(uname -s)" == Linux ]] || die "up: Linux only"
command -v curl >/dev/null 2>&1 || die "up: curl not found (used for health checks)"

# 1. binaries (no-op when cached) ---------------------------------------------
bash "$CLUSTER_DIR/build.sh"

for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  ln -sfn "$KUBE_BIN_DIR/$b" "$BIN_DIR/$b"
done
ln -sfn "$ETCD_BIN_DIR/etcd" "$BIN_DIR/etcd"
ln -sfn "$KWOK_BIN_DIR/kwok" "$BIN_DIR/kwok"
ln -sfn "$CERT_MANAGER_DIR/crds" "$STATE_DIR/crds"
KUBECTL=("$BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_FILE")

# 2. ports, certificates and kubeconfigs ---------------------------------------
choose_slot
ensure_pki
cat >"$STATE_DIR/env.sh" <<EOF
# source this file: use the local control plane (written by cluster/up.sh)
export KUBECONFIG="$KUBECONFIG_FILE"
export PATH="$BIN_DIR:\$PATH"
EOF

# 3. processes, in dependency order -------------------------------------------
preflight_ports
ensure etcd etcd_healthy 30 start_etcd "$ETCD_CLIENT_PORT"
ensure kube-apiserver apiserver_ready 90 start_apiserver "$APISERVER_PORT"
if (( ENSURE_STARTED )); then
  stop_apiserver_clients
fi

# 4. bootstrap objects (server-side apply: idempotent, no size limit on CRDs) --
log "applying bootstrap objects and cert-manager $CERT_MANAGER_VERSION CRDs"
"${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager=tutor-eks-cluster-up \
  -f "$CLUSTER_DIR/bootstrap.yaml" -f "$CERT_MANAGER_DIR/crds/" >"$LOG_DIR/bootstrap.log" 2>&1 \
  || { cat "$LOG_DIR/bootstrap.log" >&2; die "bootstrap: kubectl apply failed"; }

ensure_apiserver_clients

# 5. wait until the cluster does what tests need -------------------------------
node_ready() {
  [[ "$("${KUBECTL[@]}" get node "$NODE_NAME" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
default_sa() { "${KUBECTL[@]}" -n default get serviceaccount default >/dev/null 2>&1; }
wait_until 60 "fake node $NODE_NAME (kwok)" node_ready
wait_until 60 "default ServiceAccount (kube-controller-manager)" default_sa
"${KUBECTL[@]}" wait --for=condition=Established --timeout=60s \
  crd/clusterissuers.cert-manager.io crd/issuers.cert-manager.io crd/certificates.cert-manager.io \
  >>"$LOG_DIR/bootstrap.log" 2>&1 || die "cert-manager CRDs not Established (see $LOG_DIR/bootstrap.log)"

log "ready in $((SECONDS - T0))s: $SERVER_URL (Kubernetes $KUBE_VERSION)"
log "  export KUBECONFIG=$KUBECONFIG_FILE PATH=$BIN_DIR:\$PATH   (or: source .cluster/env.sh)"
