#!/usr/bin/env bash
# cluster/down.sh: stop the local control plane started by cluster/up.sh.  `make cluster-down`
#
# Stops kwok, kube-scheduler, kube-controller-manager, kube-apiserver and etcd
# of THIS checkout (pid files in .cluster/run/, plus any untracked process whose
# command line names this checkout's .cluster/), clients first, etcd last. Only those
# processes are signalled, by pid.
#
# The state in .cluster/ (etcd data, certificates, kubeconfig) is kept, so the
# next `bash cluster/up.sh` resumes the same cluster in seconds.
#   --purge   also delete the cluster's state (.cluster/ except bin/ and logs/):
#             the next up.sh starts an empty cluster with a new CA.
# The binary cache (~/.cache/tutor-contrib-eks) is never touched.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "down: unknown argument '$arg' (use --purge or nothing)" ;;
  esac
done

if [[ ! -d "$STATE_DIR" ]]; then
  log "nothing to stop: no $STATE_DIR"
  exit 0
fi
lock_state

stop_all() {
  local name pids=()
  for name in "$@"; do
    if pid_alive "$name"; then
      log "stopping $name (pid $(cat "$RUN_DIR/$name.pid"))"
    fi
    stop_component "$name" &
    pids+=($!)
  done
  wait "${pids[@]}"
  for name in "$@"; do kill_orphans "$name"; done
}
# Clients of the apiserver first (together), then the apiserver, then etcd.
stop_all kwok kube-scheduler kube-controller-manager
stop_all kube-apiserver
stop_all etcd

if (( PURGE )); then
  log "purging cluster state in $STATE_DIR (etcd data, pki, kubeconfig)"
  rm -rf "$STATE_DIR/etcd" "$STATE_DIR/pki" "$STATE_DIR/run" "$STATE_DIR/kwok" \
         "$STATE_DIR/kubeconfig" "$STATE_DIR/egress-selector.yaml" "$STATE_DIR/env.sh" "$STATE_DIR/crds" \
         "$STATE_DIR/ports"
fi
log "control plane stopped"
