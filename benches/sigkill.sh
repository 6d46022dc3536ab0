#!/usr/bin/env bash
# SIGKILLs pm at random moments and counts what survives it.
#
#   benches/sigkill.sh [PM] [TRIES]        (default: target/release/pm, 200)
#
# Three scenarios, each TRIES times: pm is SIGKILLed at a random moment
# (0-300 ms) during startup of 20 instances, during a `pm restart` of every
# instance, and during shutdown (after SIGTERM). The instances escape their
# process group in every way a shell can: setsid, setpgid, a double fork
# through a subshell, a plain background job. A survivor is any process still carrying this run's
# marker 3 s after the kill. Target: 0 survivors in every scenario.
# With PM_CGROUP=off in the environment it measures the fallback without a
# cgroup; SCENARIOS="restart" runs only the ones named. Survivors are
# described on stderr.
set -euo pipefail
pm=$(realpath "${1:-target/release/pm}")
tries=${2:-200}
dir=$(mktemp -d)
trap 'pkill -KILL -f "pmsk-$$-" 2>/dev/null || true; rm -rf "$dir"' EXIT
marker="pmsk-$$-"
# Every leaf is `perl -e 'sleep 1000' MARKER`: one process whose command
# line carries the marker.
s="perl -e 'sleep 1000'"
cat > "$dir/Procfile" <<PROCFILE
a: setsid $s ${marker}a & wait
b: perl -e 'setpgrp(0, 0); sleep 1000' ${marker}b & wait
c: (setsid $s ${marker}c &); exec $s ${marker}cc
d: $s ${marker}d & exec $s ${marker}dd
PROCFILE

survivors() {
    local deadline=$((SECONDS + 3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        pgrep -f "$marker" >/dev/null || { echo 0; return; }
        sleep 0.05
    done
    pgrep -f "$marker" | wc -l
    # What survived, and where, for the record (stderr).
    for p in $(pgrep -f "$marker"); do
        echo "survivor: $(ps -o pid=,ppid=,pgid=,sid=,stat=,args= -p "$p") cgroup=$(tail -1 "/proc/$p/cgroup" 2>/dev/null)" >&2
    done
    pkill -KILL -f "$marker" 2>/dev/null || true
}

random_ms() { python3 -c "import random; print(random.randint(0, $1) / 1000)"; }

run() {
    local scenario=$1 total=0 bad=0
    for _ in $(seq "$tries"); do
        (cd "$dir" && exec "$pm" start --no-timestamp a=5 b=5 c=5 d=5 >/dev/null 2>&1) &
        local pid=$!
        case $scenario in
            startup) ;;
            restart)
                sleep 0.3
                (cd "$dir" && "$pm" restart a b c d >/dev/null 2>&1 || true) & ;;
            shutdown)
                sleep 0.3
                kill -TERM "$pid" 2>/dev/null || true ;;
        esac
        sleep "$(random_ms 300)"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        local n
        n=$(survivors)
        total=$((total + n))
        [ "$n" -eq 0 ] || bad=$((bad + 1))
        rm -f "$dir/.pm.sock"
    done
    printf '%-9s tries %4d  tries with survivors %4d  survivors %5d\n' "$scenario" "$tries" "$bad" "$total"
}

for scenario in ${SCENARIOS:-startup restart shutdown}; do
    run "$scenario"
done
