#!/usr/bin/env bash
# cluster/apiserver.sh: stop or start the kube-apiserver alone (fault-injection tests).
#
#   bash cluster/apiserver.sh stop      SIGTERM the apiserver (others keep running)
#   bash cluster/apiserver.sh start     start it again, wait for /readyz, then restart
#                                       the controller-manager, scheduler and kwok
#                                       (see APISERVER_CLIENTS in components.sh)
#   bash cluster/apiserver.sh status    exit 0 if it is running and ready
#
# Needs a cluster created by cluster/up.sh (certificates, etcd); start fails
# with a clear message otherwise. `stop` leaves etcd, the controller-manager,
# the scheduler and kwok running (they log connection errors meanwhile).
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster/components.sh
source "$CLUSTER_DIR/components.sh"

case "${1:-}" in
  stop)
    lock_state
    stop_component kube-apiserver 5
    kill_orphans kube-apiserver
    apiserver_port_closed() { ! port_busy "$APISERVER_PORT"; }
    wait_until 15 "kube-apiserver shutdown (port $APISERVER_PORT still open)" apiserver_port_closed
    log "kube-apiserver stopped"
    ;;
  start)
    lock_state
    [[ -s "$PKI_DIR/ca.crt" && -x "$KUBE_BIN_DIR/kube-apiserver" ]] \
      || die "kube-apiserver: no cluster here yet; run 'bash cluster/up.sh' first"
    if ! { pid_alive etcd && etcd_healthy; }; then
      die "kube-apiserver: etcd is not running; run 'bash cluster/up.sh'"
    fi
    ensure kube-apiserver apiserver_ready 90 start_apiserver "$APISERVER_PORT"
    if (( ENSURE_STARTED )); then
      stop_apiserver_clients
    fi
    ensure_apiserver_clients
    log "kube-apiserver ready at $SERVER_URL"
    ;;
  status)
    pid_alive kube-apiserver && apiserver_ready
    ;;
  *)
    echo "usage: bash cluster/apiserver.sh stop|start|status" >&2
    exit 2
    ;;
esac
