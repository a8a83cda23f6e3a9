#!/usr/bin/env bash
# Install the Debian packages the tests need, if missing (`make test` runs this):
#   curl            the control plane's health checks
#   openssl         the demo's random passwords
#   mariadb-server, mariadb-client, redis-server
#                   the service tests start their own MariaDB and Redis on
#                   127.0.0.1 (the packages' own services are not used)
# Needs root (CI runs as root); prints what it installs.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
for pair in curl:curl openssl:openssl mariadbd:mariadb-server mariadb:mariadb-client redis-server:redis-server; do
  tool=${pair%%:*} package=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
