#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 (trust for `postgres`) and Redis on 127.0.0.1:6379, for the tests.
# Starts them when installed; on Debian/Ubuntu installs them first when missing (apt, as root or with sudo);
# anywhere else, or without the rights to install, says in one line what to install. Exit 1 when they still fail.
set -euo pipefail

pg_up() { command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }
fail() { echo "error: $*" >&2; exit 1; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

need=()
if ! pg_up && ! command -v pg_lsclusters >/dev/null 2>&1; then need+=(postgresql); fi
if ! redis_up && ! command -v redis-server >/dev/null 2>&1; then need+=(redis-server); fi

if [ ${#need[@]} -gt 0 ]; then
  hint="install ${need[*]} (e.g. sudo apt-get install ${need[*]}), then run this again"
  command -v apt-get >/dev/null 2>&1 || fail "PostgreSQL and Redis are needed: $hint"
  if [ -n "$sudo" ] && ! command -v sudo >/dev/null 2>&1; then fail "not root and no sudo: $hint"; fi
  echo "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null \
    || fail "apt-get could not install them: $hint"
  if [[ " ${need[*]} " == *" postgresql "* ]]; then
    # The tests connect as postgres over loopback without a password: allow that, on the cluster we just made.
    read -r version cluster _ < <(pg_lsclusters -h | head -n 1)
    hba="/etc/postgresql/$version/$cluster/pg_hba.conf"
    $sudo sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  fi
fi

if ! pg_up; then
  echo "PostgreSQL is not answering; starting it"
  read -r version cluster _ < <(pg_lsclusters -h | head -n 1) || fail "no PostgreSQL cluster: create one with pg_createcluster"
  $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
  wait_for pg_up || fail "PostgreSQL $version/$cluster does not answer on 127.0.0.1:5432"
fi
echo "postgresql: accepting connections on 127.0.0.1:5432"

if ! redis_up; then
  echo "Redis is not answering; starting it"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
  wait_for redis_up || fail "Redis does not answer on 127.0.0.1:6379"
fi
echo "redis: PONG"
