# shellcheck shell=bash
# Shared by the ci/ setup scripts (sourced, never run): quiet, timed steps that
# fail with one line, idempotent apt installs that never start a service, and
# cleanup on exit. A step's output goes to a log that is deleted on success and
# kept, and named in the error line, on failure.
# PM_CI_TIMES=1 prints each step's wall time to stderr.

ci_name="ci/$(basename "$0")"
ci_logs=$(mktemp -d "${TMPDIR:-/tmp}/pm-ci.XXXXXX")
ci_cleanups=()
ci_step=""
ci_log=""
ci_apt_updated=""
# The script's own stderr, for the error line: a step's is its log.
exec 3>&2

# On exit: names the step that failed (set -e ended it), runs the cleanups
# registered with ci_on_exit, newest first, and keeps the logs only on failure.
ci_exit() {
    local rc=$? i
    if [ "$rc" -ne 0 ] && [ -n "$ci_step" ]; then
        echo "$ci_name: $ci_step failed: $(grep -v '^[[:space:]]*$' "$ci_log" | tail -n 1) (log: $ci_log)" >&3
    fi
    for ((i = ${#ci_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${ci_cleanups[i]}" >/dev/null 2>&1 || true
    done
    [ "$rc" -ne 0 ] || rm -rf "$ci_logs"
}
trap ci_exit EXIT

ci_on_exit() { ci_cleanups+=("$1"); }

die() {
    echo "$ci_name: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root: it installs packages and starts daemons"

# step NAME CMD...: runs CMD (a command or a shell function, under set -e) with
# its output in a log. If it fails the script exits, and the error line names
# NAME, the last line CMD printed and the log.
step() {
    local start=${EPOCHREALTIME/./} name=$1 ms
    ci_step=$1
    ci_log="$ci_logs/${1// /-}.log"
    shift
    "$@" >"$ci_log" 2>&1 </dev/null
    ci_step=""
    if [ -n "${PM_CI_TIMES:-}" ]; then
        ms=$(((${EPOCHREALTIME/./} - start) / 1000))
        printf '%s: %s: %d.%ds\n' "$ci_name" "$name" $((ms / 1000)) $((ms % 1000 / 100)) >&2
    fi
}

# fail MESSAGE: ends the current step with MESSAGE as the line its error shows.
fail() {
    echo "$*"
    exit 1
}

# wait_ready SECONDS PID WHAT LOG CMD...: reruns CMD until it succeeds while
# PID, a daemon writing to LOG, lives; fails the step, naming WHAT and its last
# log line, if the daemon exits first or CMD has not succeeded in SECONDS.
wait_ready() {
    local secs=$1 deadline=$((SECONDS + $1)) pid=$2 what=$3 log=$4
    shift 4
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || fail "$what exited: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
        [ "$SECONDS" -lt "$deadline" ] || fail "$what was not ready within ${secs}s: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
        sleep 0.2
    done
}

# apt_install PACKAGE...: installs those of the packages not yet installed,
# without recommends and without starting their services (a policy-rc.d that
# denies starts is in place for the duration, unless the machine has its own).
# Refreshes the package lists once per run, and only if something is missing.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        ci_on_exit "rm -f /usr/sbin/policy-rc.d"
    fi
    if [ -z "$ci_apt_updated" ]; then
        apt-get update -qq
        ci_apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
