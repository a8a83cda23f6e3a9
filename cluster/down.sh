#!/usr/bin/env bash
# cluster/down.sh: stop the local control plane started by cluster/up.sh.  `make cluster-down`
#
# Stops kwok, kube-scheduler, kube-controller-manager, kube-apiserver and etcd
# of THIS checkout's kwokctl cluster: clients first, etcd last, each with
# SIGTERM (SIGKILL after 10 s), by the pid kwokctl recorded once that pid is
# checked to run this cluster's binary (see component_pid in lib.sh); then
# `kwokctl stop cluster` for anything left.
#
# The state in .cluster/ (etcd data, certificates, kubeconfig) is kept, so the
# next `bash cluster/up.sh` resumes the same cluster in seconds.
#   --purge   also delete the cluster (`kwokctl delete cluster`: etcd data,
#             certificates) and the files up.sh wrote: the next up.sh starts an
#             empty cluster with a new CA.
# The binary cache (~/.cache/tutor-contrib-eks) is never touched.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "down: unknown argument '$arg' (use --purge or nothing)" ;;
  esac
done

if [[ ! -d "$STATE_DIR" ]]; then
  log "nothing to stop: no $STATE_DIR"
  exit 0
fi
lock_state
retire_legacy_layout
forget_dead_pids
adopt_orphans

stopped=()
for name in "${COMPONENTS[@]}"; do component_alive "$name" && stopped+=("$name"); done
stop_cluster
(( ${#stopped[@]} == 0 )) || log "stopped ${stopped[*]}"

if (( PURGE )); then
  log "purging cluster state in $STATE_DIR (kwokctl cluster $CLUSTER_NAME: etcd data, pki; kubeconfig)"
  if [[ -x "$KWOKCTL" && -d "$KWOK_CLUSTER_DIR" ]]; then
    kwokctl delete cluster --kubeconfig="$KWOK_HOME/no-kubeconfig"
  fi
  rm -rf "$KWOK_HOME" "$RUN_DIR" "$KUBECONFIG_FILE" "$KWOKCTL_CONFIG" "$EGRESS_CONFIG" \
         "$STATE_DIR/env.sh" "$STATE_DIR/crds" "$STATE_DIR/pki" "$STATE_DIR/pids" \
         "$STATE_DIR/ports" "$LOG_DIR/components"
fi
log "control plane stopped"
