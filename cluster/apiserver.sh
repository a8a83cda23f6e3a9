#!/usr/bin/env bash
# cluster/apiserver.sh: stop or start the kube-apiserver alone (fault-injection tests).
#
#   bash cluster/apiserver.sh stop      SIGTERM the apiserver (others keep running)
#   bash cluster/apiserver.sh start     start it again (`kwokctl start cluster`), with
#                                       a fresh controller-manager, scheduler and kwok,
#                                       and wait for /readyz
#   bash cluster/apiserver.sh status    exit 0 if it is running and ready
#
# Needs a cluster created by cluster/up.sh; start fails with a clear message
# otherwise. `stop` leaves etcd, the controller-manager, the scheduler and kwok
# running (they log connection errors meanwhile). kwokctl starts or stops whole
# clusters only, so stopping one component is a signal to the pid kwokctl
# recorded (checked first, see component_pid in lib.sh).
set -euo pipefail
# shellcheck source=cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  stop)
    lock_state
    stop_component kube-apiserver 5
    apiserver_port_closed() { ! port_busy "$APISERVER_PORT"; }
    wait_until 15 "kube-apiserver shutdown (port $APISERVER_PORT still open)" apiserver_port_closed
    log "kube-apiserver stopped"
    ;;
  start)
    lock_state
    [[ -x "$KWOKCTL" && -s "$KWOK_CLUSTER_DIR/kwok.yaml" ]] \
      || die "kube-apiserver: no cluster here yet; run 'bash cluster/up.sh' first"
    component_alive etcd || die "kube-apiserver: etcd is not running; run 'bash cluster/up.sh'"
    if ! component_alive kube-apiserver; then
      # Clients restarted with it: their informers would otherwise sit in
      # back-off for a while after the outage.
      stop_components "${APISERVER_CLIENTS[@]}"
      forget_dead_pids
      write_egress_config
      kwokctl start cluster
    fi
    wait_healthy 90 kube-apiserver "${APISERVER_CLIENTS[@]}"
    log "kube-apiserver ready at $SERVER_URL"
    ;;
  status)
    component_alive kube-apiserver && apiserver_ready
    ;;
  *)
    echo "usage: bash cluster/apiserver.sh stop|start|status" >&2
    exit 2
    ;;
esac
