#!/usr/bin/env bash
# Runs the shop's exports (examples/shop: Redis, PostgreSQL, the release's
# migrations, a balanced web, workers, a clock) on the real engines
# ci/engines.sh set up, unchanged, and checks they run what `pm start` runs:
# - Docker Compose: `docker compose up --wait` brings every service up
#   (healthy where it has a check), 20 requests to 127.0.0.1:8080 are all
#   answered and spread over the web replicas, orders are processed, and
#   `docker compose down` ends within the grace;
# - systemd as PID 1 of a container: the units `pm export systemd` writes
#   there, `systemctl start APP.target`, every unit active, the same requests
#   and order, and `systemctl stop APP.target` leaves no unit and no process
#   of the app running;
# - Kubernetes: the export validated with `kubernetes-validate --strict`,
#   every address its env uses a Service of the export, and every
#   dependency an init container probing that Service (the same checks as
#   tests/it/export.rs).
# The image is examples/shop/Dockerfile's, with pm from `cargo build --release`.
# When an engine cannot start or a check fails it prints one line and exits
# 1; nothing is skipped.
# Usage (as root, after ci/engines.sh): ci/engine-tests.sh
#   PM_CI_TIMES=1 prints step timings.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
export DOCKER_BUILDKIT=0

app_dir=examples/shop
app=shop
image="pm-shop:ci"
systemd_image="pm-shop-systemd:ci"
proxy=8080
requests=20
# Orders placed through :$proxy on compose (all processed) and on systemd.
compose_orders=5
systemd_orders=1
# The longest stop_timeout of the shop's types (db and worker): what a stop
# may take, with a few seconds for the engine itself.
grace=10
stop_limit=$((grace + 5))

tmp=$(mktemp -d /var/tmp/pm-ci-engine-tests.XXXXXX)
ci_on_exit "rm -rf '$tmp'"
pm=target/release/pm

build_pm() {
    cargo build --release --quiet
}

build_images() {
    docker build -q -f "$app_dir/Dockerfile" -t "$image" .
    # The same image with systemd as its init. redis-server's own unit and
    # PostgreSQL's are masked: only the export's units run the app.
    docker build -q -t "$systemd_image" - <<EOF
FROM $image
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv \\
    && rm -rf /var/lib/apt/lists/* \\
    && systemctl mask redis-server.service postgresql.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
}

# requests_to RUN...: sends $requests GETs of / to 127.0.0.1:$proxy with RUN
# (a command prefix: `on_host`, or `docker exec NAME` in a container); every
# one must be answered 200.
requests_to() {
    local out
    out=$("$@" sh -c "for i in \$(seq $requests); do curl -sS -o /dev/null -w '%{http_code}\n' --max-time 10 http://127.0.0.1:$proxy/ || echo failed; done")
    [ "$(grep -cx 200 <<<"$out")" -eq "$requests" ] ||
        fail "$(grep -cvx 200 <<<"$out") of $requests requests to :$proxy were not answered 200: $(sort <<<"$out" | uniq -c | tr '\n' ' ')"
}

# spread COUNTS: COUNTS holds one number per web instance, the requests it
# logged (`GET / -> 200`); each must have had some, and all of them together.
spread() {
    local counts=$1 total
    total=$(awk '{ s += $1 } END { print s + 0 }' <<<"$counts")
    [ "$total" -ge "$requests" ] || fail "the web instances logged $total of the $requests requests"
    ! grep -qx 0 <<<"$counts" || fail "a web instance got none of the $requests requests: $(tr '\n' ' ' <<<"$counts")"
    [ "$(grep -c . <<<"$counts")" -ge 2 ] || fail "one web instance took every request"
    say "$requests requests answered, spread over the web instances as $(tr '\n' ' ' <<<"$counts")"
}

# orders_through COUNT RUN...: places COUNT orders through :$proxy (the
# shop's POST /orders) and waits until a worker has processed each (its
# receipt no longer says "queued": paid, or rejected when out of stock).
orders_through() {
    local count=$1 receipt status deadline=$((SECONDS + 60)) i
    local -a receipts=()
    shift
    for ((i = 1; i <= count; i++)); do
        receipt=$("$@" curl -fsS --max-time 10 -X POST -d 'sku=TEA-003&qty=1' "http://127.0.0.1:$proxy/orders") ||
            fail "placing order $i of $count failed"
        receipts+=("${receipt##*: }")
    done
    for receipt in "${receipts[@]}"; do
        until status=$("$@" curl -fsS --max-time 10 "http://127.0.0.1:$proxy$receipt") &&
            [[ $status == *'"status": "'* && $status != *'"status": "queued"'* ]]; do
            [ "$SECONDS" -lt "$deadline" ] || fail "order ${receipt%%\?*} was not processed within 60s: ${status:-no answer}"
            sleep 0.2
        done
        echo "$status"
    done
    say "$count of $count orders processed, the last: $status"
}

on_host() { "$@"; }

# say TEXT: a figure for the reader of CI's output (a step's own output
# goes to its log, kept only on failure).
say() { echo "$ci_name: $*" >&3; }

compose() {
    local dir=$tmp/compose start ms expected
    [ -z "$(ss -Htln "sport = :$proxy")" ] || fail "127.0.0.1:$proxy is in use on this machine: compose cannot publish it"
    "$pm" export compose "$dir" -d "$app_dir" --app "$app" --image "$image"
    local c=(docker compose -p "$app" -f "$dir/compose.yaml")
    ci_on_exit "${c[*]} down -t 1"
    "${c[@]}" up -d --wait --wait-timeout 120 ||
        fail "compose up --wait failed: $("${c[@]}" ps -a --format '{{.Name}} {{.State}} {{.Health}}' | tr '\n' ' ')"
    "${c[@]}" ps -a --format '{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}' >"$tmp/ps"
    cat "$tmp/ps"
    # Every replica of every service but the release runs (healthy where
    # checked); the release exited 0.
    expected=$("${c[@]}" config --format json | python3 -c 'import json, sys
services = json.load(sys.stdin)["services"]
print(sum(s.get("deploy", {}).get("replicas", 1) for n, s in services.items() if n != "release"))')
    [ "$(grep -c ' running ' "$tmp/ps")" -eq "$expected" ] ||
        fail "$(grep -c ' running ' "$tmp/ps") of $expected containers run: $(tr '\n' ' ' <"$tmp/ps")"
    grep -q '^release exited  0$' "$tmp/ps" || fail "the release did not complete: $(grep release "$tmp/ps")"
    ! grep -q unhealthy "$tmp/ps" || fail "a service is unhealthy: $(grep unhealthy "$tmp/ps")"
    requests_to on_host
    spread "$(for id in $("${c[@]}" ps -q web); do docker logs "$id" 2>&1 | grep -c 'GET / -> 200' || true; done)"
    orders_through "$compose_orders" on_host
    start=${EPOCHREALTIME/./}
    timeout $((grace * 2)) "${c[@]}" down -t "$grace" || fail "compose down did not end within $((grace * 2))s"
    ms=$(((${EPOCHREALTIME/./} - start) / 1000))
    [ "$ms" -le $((stop_limit * 1000)) ] || fail "compose down took ${ms}ms, more than the ${grace}s grace"
    say "compose: $expected containers running ($(awk '$2 == "running" { print $1 }' "$tmp/ps" | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')), the release done; down in ${ms}ms"
}

# units_in NAME STATES: the app's units in the container NAME in one of STATES.
units_in() {
    docker exec "$1" systemctl list-units "$app*" --all --plain --no-legend --state="$2" | awk '{print $1}'
}

# app_processes NAME: the app's processes left in the container NAME.
app_processes() {
    # By command name: the scanning shell itself is only `sh`.
    docker exec "$1" sh -c 'for p in /proc/[0-9]*; do c=$(cat "$p/comm" 2>/dev/null); case $c in redis-server | postgres | python3 | pm) echo "${p#/proc/} $c" ;; esac; done'
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
    docker exec -w /app "$name" pm export systemd /etc/systemd/system --app "$app" --pm-path /usr/local/bin/pm
    docker exec "$name" systemctl daemon-reload
    docker exec "$name" systemctl start "$app.target"
    # The target and every unit it wants (the release stays active: it
    # remains after exit).
    expected=$(($(docker exec "$name" systemctl show -p Wants --value "$app.target" | wc -w) + 1))
    deadline=$((SECONDS + 60))
    until units=$(units_in "$name" active) && [ "$(grep -c . <<<"$units")" -eq "$expected" ]; do
        ! units_in "$name" failed | grep -q . ||
            fail "units failed: $(units_in "$name" failed | tr '\n' ' ')"
        [ "$SECONDS" -lt "$deadline" ] ||
            fail "$(grep -c . <<<"$units") of $expected units active after 60s: $(tr '\n' ' ' <<<"$units")"
        sleep 0.2
    done
    say "systemd: $(grep -c . <<<"$units") units active: $(tr '\n' ' ' <<<"$units")"
    requests_to docker exec "$name"
    spread "$(grep "^$app-web@" <<<"$units" | while read -r unit; do
        docker exec "$name" journalctl -q -o cat -u "$unit" | grep -c 'GET / -> 200' || true
    done)"
    orders_through "$systemd_orders" docker exec "$name"
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
    [ "$ms" -le $((stop_limit * 1000)) ] || fail "systemctl stop took ${ms}ms, more than the ${grace}s grace"
    say "systemd: stopped in ${ms}ms, no unit and no process left"
    docker rm -f "$name"
}

# kubernetes_addresses DIR: every address an env value of the export in DIR
# uses (ConfigMap and Secret) is one of its Services, with that port, and
# every workload has one init container per dependency in pm.toml, probing
# that dependency's Service over the network with `pm probe` (never an
# exec check: that runs in the dependency's own pod).
kubernetes_addresses() {
    python3 - "$1" "$app" "$app_dir/pm.toml" <<'EOF_PY'
import glob, re, sys, tomllib
import yaml

directory, app, pm_toml = sys.argv[1:]
docs = [d for f in sorted(glob.glob(directory + "/*.yaml")) for d in yaml.safe_load_all(open(f))]
services = {d["metadata"]["name"]: d["spec"]["ports"][0]["port"] for d in docs if d["kind"] == "Service"}
env = {}
for d in docs:
    env.update(d.get("data") or {} if d["kind"] == "ConfigMap" else {})
    env.update(d.get("stringData") or {} if d["kind"] == "Secret" else {})
used = set()
for name, value in env.items():
    for host, port in re.findall(r"[@/]([a-z0-9-]+):([0-9]+)", str(value)):
        if host.startswith(app + "-"):
            if services.get(host) != int(port):
                sys.exit(f"{name} uses {host}:{port}, which is no Service of the export: {services}")
            used.add(f"{host}:{port}")
if not used:
    sys.exit("no env value uses a Service of the export")
processes = tomllib.load(open(pm_toml, "rb")).get("process", {})
workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
for d in workloads:
    kind, pod = d["metadata"]["annotations"]["pm/process-type"], d["spec"]["template"]["spec"]
    deps = [t for t in processes.get(kind, {}).get("depends_on", []) if t != "release"]
    want = sorted(f"{app}-{t}:{services[f'{app}-{t}']}" for t in deps)
    init = pod.get("initContainers", [])
    for c in init:
        if c["command"][:2] != ["pm", "probe"] or "--exec" in c["command"]:
            sys.exit(f"{kind}: init container {c['name']} is not a network probe: {c['command']}")
    got = sorted(c["command"][-1] for c in init)
    if got != want:
        sys.exit(f"{kind} waits for {got}, not for its dependencies' Services {want}")
print(f"{len(used)} addresses used, all Services; {len(workloads)} workloads wait for their dependencies")
EOF_PY
}

kubernetes() {
    local dir=$tmp/kubernetes checked
    "$pm" export kubernetes "$dir" -d "$app_dir" --app "$app" --image "$image"
    command -v kubernetes-validate >/dev/null || fail "kubernetes-validate is not installed"
    kubernetes-validate --strict --quiet "$dir"/*.yaml || fail "kubernetes-validate --strict failed"
    checked=$(kubernetes_addresses "$dir" 2>&1) || fail "$checked"
    say "kubernetes: $(find "$dir" -name "*.yaml" | wc -l) objects valid (--strict); $checked"
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
