#!/usr/bin/env bash
# Runs an app's exports on the real engines ci/engines.sh set up, unchanged,
# and checks they run what `pm start` runs:
# - Docker Compose: `docker compose up --wait` brings every service up
#   (healthy where it has a check), 20 requests to 127.0.0.1:8080 are all
#   answered and spread over the web replicas, an order is processed, and
#   `docker compose down` ends within the grace;
# - systemd as PID 1 of a container: the units `pm export systemd` writes
#   there, `systemctl start APP.target`, every unit active, the same requests
#   and order, and `systemctl stop APP.target` leaves no unit and no process
#   of the app running;
# - Kubernetes: the export validated with `kubernetes-validate --strict`
#   (tests/it/export.rs checks its addresses are its Services and every
#   dependency has an init container).
# The app is ci/engine-app (Redis, a balanced web, workers), built into an
# image by examples/shop/Dockerfile with pm from `cargo build --release`.
# When an engine cannot start or a check fails it prints one line and exits
# 1; nothing is skipped.
# Usage (as root, after ci/engines.sh): ci/engine-tests.sh
#   PM_CI_TIMES=1 prints step timings.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
export DOCKER_BUILDKIT=0

app_dir=ci/engine-app
app=pmci
image="pm-engine-app:ci"
systemd_image="pm-engine-app-systemd:ci"
proxy=8080
requests=20
# The longest stop_timeout of the app's types (pm.toml's timeout), plus
# the engine's own overhead: what a stop may take.
grace=10

tmp=$(mktemp -d /var/tmp/pm-ci-engine-tests.XXXXXX)
ci_on_exit "rm -rf '$tmp'"
pm=target/release/pm

build_pm() {
    cargo build --release --quiet
}

build_images() {
    docker build -q -f examples/shop/Dockerfile --build-arg APP="$app_dir" -t "$image" .
    # The same image with systemd as its init. redis-server's own unit is
    # masked: only the export's units run the app.
    docker build -q -t "$systemd_image" - <<EOF
FROM $image
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv \\
    && rm -rf /var/lib/apt/lists/* \\
    && systemctl mask redis-server.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
}

# requests_to RUN...: sends $requests GETs to 127.0.0.1:$proxy with RUN
# (a command prefix: nothing on the host, `docker exec NAME` in a
# container); every one must be answered, by at least two instances.
requests_to() {
    local out served
    out=$("$@" sh -c "for i in \$(seq $requests); do curl -fsS --max-time 10 http://127.0.0.1:$proxy/ || echo FAILED; done") ||
        fail "requests to :$proxy failed: $out"
    [ "$(grep -c . <<<"$out")" -eq "$requests" ] || fail "$requests requests, $(grep -c . <<<"$out") answers"
    ! grep -q FAILED <<<"$out" || fail "$(grep -c FAILED <<<"$out") of $requests requests to :$proxy failed"
    served=$(sort -u <<<"$out" | wc -l)
    [ "$served" -ge 2 ] || fail "all $requests requests were served by one instance: $(sort -u <<<"$out")"
    say "$requests requests answered by $served instances"
}

# order_through RUN...: places an order through :$proxy and waits until a
# worker has processed it.
order_through() {
    local id status deadline=$((SECONDS + 30))
    id=$("$@" curl -fsS --max-time 10 -X POST "http://127.0.0.1:$proxy/orders") || fail "placing an order failed"
    until status=$("$@" curl -fsS --max-time 10 "http://127.0.0.1:$proxy/orders/$id") &&
        [[ $status == processed* ]]; do
        [ "$SECONDS" -lt "$deadline" ] || fail "order $id was not processed within 30s: ${status:-no answer}"
        sleep 0.2
    done
    say "order $id $status"
}

on_host() { "$@"; }

# say TEXT: a figure for the reader of CI's output (a step's own output
# goes to its log, kept only on failure).
say() { echo "$ci_name: $*" >&3; }

compose() {
    local dir=$tmp/compose start ms
    [ -z "$(ss -Htln "sport = :$proxy")" ] || fail "127.0.0.1:$proxy is in use on this machine: compose cannot publish it"
    "$pm" export compose "$dir" -d "$app_dir" --app "$app" --image "$image"
    local c=(docker compose -p "$app" -f "$dir/compose.yaml")
    ci_on_exit "${c[*]} down -t 1"
    "${c[@]}" up -d --wait --wait-timeout 120 ||
        fail "compose up --wait failed: $("${c[@]}" ps -a --format '{{.Name}} {{.State}} {{.Health}}' | tr '\n' ' ')"
    "${c[@]}" ps -a --format '{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}' >"$tmp/ps"
    cat "$tmp/ps"
    # Every replica runs (healthy where checked); the release exited 0.
    [ "$(grep -c ' running ' "$tmp/ps")" -eq 6 ] || fail "not every service runs: $(tr '\n' ' ' <"$tmp/ps")"
    grep -q '^release exited  0$' "$tmp/ps" || fail "the release did not complete: $(grep release "$tmp/ps")"
    ! grep -q unhealthy "$tmp/ps" || fail "a service is unhealthy: $(grep unhealthy "$tmp/ps")"
    requests_to on_host
    order_through on_host
    start=${EPOCHREALTIME/./}
    timeout $((grace * 2)) "${c[@]}" down -t "$grace" || fail "compose down did not end within $((grace * 2))s"
    ms=$(((${EPOCHREALTIME/./} - start) / 1000))
    [ "$ms" -le $((grace * 1000)) ] || fail "compose down took ${ms}ms, more than the ${grace}s grace"
    say "compose: $(grep -c ' running ' "$tmp/ps") containers running, the release done; down in ${ms}ms"
}

# units_in NAME STATES: the app's units in the container NAME in one of STATES.
units_in() {
    docker exec "$1" systemctl list-units "$app*" --all --plain --no-legend --state="$2" | awk '{print $1}'
}

# app_processes NAME: the app's processes left in the container NAME.
app_processes() {
    # By command name: the scanning shell itself is only `sh`.
    docker exec "$1" sh -c 'for p in /proc/[0-9]*; do c=$(cat "$p/comm" 2>/dev/null); case $c in redis-server | python3 | pm) echo "${p#/proc/} $c" ;; esac; done'
}

systemd() {
    local name=$app-systemd-$$ state="" deadline=$((SECONDS + 60)) units expected start ms left
    ci_on_exit "docker rm -f $name"
    docker run -d --name "$name" --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock -e container=docker \
        "$systemd_image" /sbin/init
    until [[ $state == running || $state == degraded ]]; do
        [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] ||
            fail "systemd exited in its container: $(docker logs "$name" 2>&1 | tail -n 1)"
        [ "$SECONDS" -lt "$deadline" ] || fail "systemd did not finish booting within 60s: $state"
        sleep 0.2
        state=$(docker exec "$name" systemctl is-system-running 2>&1 || true)
    done
    # Exported where it runs, so the units name the app's real paths.
    docker exec "$name" pm export systemd /etc/systemd/system -d /app --app "$app" --pm-path /usr/local/bin/pm
    docker exec "$name" systemctl daemon-reload
    docker exec "$name" systemctl start "$app.target"
    # The target, the release, the store, 2 web, 2 workers, the balancer.
    expected=8
    deadline=$((SECONDS + 60))
    until units=$(units_in "$name" active) && [ "$(grep -c . <<<"$units")" -eq "$expected" ]; do
        ! units_in "$name" failed | grep -q . ||
            fail "units failed: $(units_in "$name" failed | tr '\n' ' ')"
        [ "$SECONDS" -lt "$deadline" ] ||
            fail "$(grep -c . <<<"$units") of $expected units active after 60s: $(tr '\n' ' ' <<<"$units")"
        sleep 0.2
    done
    say "systemd: $(grep -c . <<<"$units") units active"
    requests_to docker exec "$name"
    order_through docker exec "$name"
    start=${EPOCHREALTIME/./}
    docker exec "$name" systemctl stop "$app.target"
    # The target's stop queues its units' (PartOf=): wait until they are done.
    deadline=$((SECONDS + grace * 2))
    while left=$(units_in "$name" active,activating,deactivating,reloading) && [ -n "$left" ]; do
        [ "$SECONDS" -lt "$deadline" ] || fail "units still running $((grace * 2))s after the stop: $(tr '\n' ' ' <<<"$left")"
        sleep 0.1
    done
    ms=$(((${EPOCHREALTIME/./} - start) / 1000))
    left=$(app_processes "$name")
    [ -z "$left" ] || fail "processes left after systemctl stop: $(tr '\n' ';' <<<"$left")"
    [ "$ms" -le $((grace * 1000)) ] || fail "systemctl stop took ${ms}ms, more than the ${grace}s grace"
    say "systemd: stopped in ${ms}ms, no unit and no process left"
    docker rm -f "$name"
}

kubernetes() {
    local dir=$tmp/kubernetes
    "$pm" export kubernetes "$dir" -d "$app_dir" --app "$app" --image "$image"
    command -v kubernetes-validate >/dev/null || fail "kubernetes-validate is not installed"
    kubernetes-validate --strict --quiet "$dir"/*.yaml || fail "kubernetes-validate --strict failed"
    say "kubernetes: $(find "$dir" -name "*.yaml" | wc -l) objects valid (--strict)"
}

if ! docker info >/dev/null 2>&1; then
    die "no Docker daemon answers: run ci/engines.sh first"
fi
step "release build" build_pm
step images build_images
step compose compose
step systemd systemd
step kubernetes kubernetes
echo "$ci_name: compose, systemd and kubernetes exports run"
