#!/usr/bin/env bash
# Installs the real backing services the example apps run against, from
# Debian's archive: Redis (redis-server), PostgreSQL 15 and their Python
# clients (python3-redis, python3-psycopg), plus wrk and haproxy for the
# benchmarks. Then proves each server starts and answers: Redis on a free port,
# PostgreSQL from a fresh data dir in a temp dir as the postgres user (it
# refuses root), and stops them again; no service is left running.
# Idempotent and quiet; on failure it prints one line and exits 1.
# Usage (as root): ci/services.sh        PM_CI_TIMES=1 prints step timings.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

pg_bin=/usr/lib/postgresql/15/bin
# Debian's python3-* modules import only in Debian's own interpreter, which a
# python3 earlier on PATH (pyenv, a venv) is not.
py=/usr/bin/python3
# Runs a command as the postgres user; setpriv execs it, so $! of a
# background run is the command's own pid.
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)

install_packages() {
    apt_install redis-server postgresql python3-redis python3-psycopg wrk haproxy
    for tool in redis-server "$pg_bin/postgres" "$pg_bin/initdb" "$pg_bin/pg_isready" wrk haproxy; do
        command -v "$tool" >/dev/null || fail "$tool is not installed"
    done
    "$py" -c 'import redis, psycopg'
}

tmp=$(mktemp -d)
ci_on_exit "rm -rf '$tmp'"
# The servers' pids while they run; a check that fails leaves them to the exit
# cleanups, which read them when they run.
redis_pid=""
postgres_pid=""
# shellcheck disable=SC2016
ci_on_exit '[ -z "$redis_pid" ] || { kill "$redis_pid"; wait "$redis_pid"; }'
# shellcheck disable=SC2016
ci_on_exit '[ -z "$postgres_pid" ] || { kill -INT "$postgres_pid"; wait "$postgres_pid"; }'

check_redis() {
    local port
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$tmp" \
        >"$tmp/redis.log" 2>&1 3>&- &
    redis_pid=$!
    wait_ready 20 "$redis_pid" redis-server "$tmp/redis.log" \
        "$py" -c "import redis; redis.Redis(host='127.0.0.1', port=$port).ping()"
    "$py" - "$port" <<'EOF'
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
assert r.ping()
r.set("pm-ci", "ok")
assert r.get("pm-ci") == b"ok"
EOF
    kill "$redis_pid"
    wait "$redis_pid" || true
    redis_pid=""
}

check_postgres() {
    local port pid data=$tmp/pg
    port=$(free_port)
    # The data dir and the socket dir must be the postgres user's, and every
    # directory above them searchable by it (mktemp -d makes them 0700 root).
    install -d -o postgres -g postgres "$data"
    chmod 755 "$tmp"
    (cd "$data" && "${as_postgres[@]}" "$pg_bin/initdb" -D "$data/data" -U postgres -A trust --no-sync)
    (cd "$data" && exec "${as_postgres[@]}" "$pg_bin/postgres" -D "$data/data" -k "$data" \
        -c listen_addresses=127.0.0.1 -p "$port" -c fsync=off) >"$tmp/postgres.log" 2>&1 3>&- &
    pid=$!
    postgres_pid=$pid
    wait_ready 30 "$pid" postgres "$tmp/postgres.log" "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port"
    [ "$(head -n 1 "$data/data/postmaster.pid")" = "$pid" ] ||
        fail "the postmaster's pid is not the one started (setpriv forked?)"
    [ "$(stat -c %U "/proc/$pid")" = postgres ] || fail "postgres does not run as the postgres user"
    "$py" - "$port" <<'EOF'
import sys, psycopg
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="postgres", dbname="postgres") as db:
    db.execute("create table probe (n int)")
    db.execute("insert into probe values (1), (2)")
    (total,) = db.execute("select sum(n) from probe").fetchone()
    assert total == 3, total
EOF
    kill -INT "$pid"
    wait "$pid"
    # shellcheck disable=SC2034 # read by the exit cleanup
    postgres_pid=""
}

step packages install_packages
step redis check_redis
step postgres check_postgres
