#!/usr/bin/env bash
# cluster/apiserver.sh: stop or start the kube-apiserver alone (fault-injection tests).
#
#   bash cluster/apiserver.sh stop     SIGTERM it; etcd, the controller-manager, the
#                                      scheduler and kwok keep running (and log errors)
#   bash cluster/apiserver.sh start    start it again with fresh clients (their
#                                      watches would back off after the outage),
#                                      through `kwokctl start cluster`; wait for /readyz
#   bash cluster/apiserver.sh status   exit 0 if it runs and is ready
# kwokctl starts and stops whole clusters only: stopping one component is a
# signal to the pid in kwokctl's pid file. Needs a cluster made by up.sh.
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ready() { "$BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_FILE" get --raw /readyz --request-timeout=2s >/dev/null 2>&1; }
case "${1:-}" in
  stop)
    lock_state
    stop kube-apiserver
    log "kube-apiserver stopped"
    ;;
  start)
    lock_state
    [[ -x "$KWOKCTL" && -s "$KWOK_CLUSTER_DIR/kwok.yaml" ]] || die "no cluster here yet: run 'bash cluster/up.sh'"
    alive etcd || die "etcd is not running: run 'bash cluster/up.sh'"
    alive kube-apiserver || { stop "${CLIENTS[@]}"; kwokctl start cluster; }
    wait_until 90 "kube-apiserver" ready
    wait_until 90 "kwok" kwok_up
    log "kube-apiserver ready"
    ;;
  status) alive kube-apiserver && ready ;;
  *) echo "usage: bash cluster/apiserver.sh stop|start|status" >&2; exit 2 ;;
esac
