#!/usr/bin/env bash
# cluster/down.sh: stop the local control plane of cluster/up.sh.  `make cluster-down`
#
# `kwokctl stop cluster`: this checkout's processes (clients first, etcd last).
# Its state in .cluster/ (etcd data, certificates, kubeconfig) is kept: the next
# up.sh resumes the same cluster in seconds.
#   --purge   also delete the cluster (`kwokctl delete cluster`: etcd data, CA)
#             and the files up.sh wrote; the next up.sh starts an empty one.
# The binary cache (~/.cache/tutor-contrib-eks) is never touched.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  "") PURGE=0 ;;
  --purge) PURGE=1 ;;
  *) die "down: unknown argument '$1' (use --purge or nothing)" ;;
esac
[[ -x "$KWOKCTL" && -s "$KWOK_CLUSTER_DIR/kwok.yaml" ]] || { log "nothing to stop here"; exit 0; }
lock_state
forget_stale_pids
kwokctl stop cluster
if (( PURGE )); then
  log "deleting the cluster $CLUSTER_NAME (etcd data, certificates) and .cluster's files"
  kwokctl delete cluster --kubeconfig="$KWOK_HOME/no-kubeconfig"
  rm -rf "$KWOK_HOME" "$KUBECONFIG_FILE" "$STATE_DIR"/{env.sh,kwokctl.yaml,bootstrap-stamp.yaml,crds,pki,pids} \
         "$LOG_DIR/components"
fi
log "control plane stopped"
