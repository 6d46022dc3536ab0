#!/usr/bin/env bash
# Builds pm's .deb from the release binary, installs it with dpkg, runs the
# installed pm (--version, check, a short start of examples/hello) and
# removes the package again, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

cargo build --release --quiet
deb=$(ci/build-deb.sh target/release/pm target/deb)
version=$(dpkg-deb --field "$deb" Version)

if dpkg-query --show --showformat='${Status}' pm 2>/dev/null | grep -q installed; then
    echo "test-deb: a pm package is installed already; not replacing it" >&2
    exit 1
fi
work=$(mktemp -d)
cleanup() {
    $sudo dpkg -r pm >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
$sudo dpkg -i "$deb" >/dev/null

fail() { echo "test-deb: $*" >&2; exit 1; }

/usr/bin/pm --version | grep -q "^pm $version (" || fail "/usr/bin/pm --version: $(/usr/bin/pm --version)"
for file in /usr/share/man/man1/pm.1.gz /usr/share/man/man1/pm-start.1.gz \
    /usr/share/bash-completion/completions/pm /usr/share/zsh/vendor-completions/_pm \
    /usr/share/fish/vendor_completions.d/pm.fish /usr/share/doc/pm/copyright; do
    [ -s "$file" ] || fail "$file not installed"
done

cd examples/hello
/usr/bin/pm check >/dev/null || fail "pm check failed in examples/hello"

# A short start: only the worker (no port to collide with), its socket out
# of the tree; wait for its first job, then SIGTERM and expect exit 0.
/usr/bin/pm start --socket "$work/pm.sock" --no-timestamp worker=1 > "$work/out" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    grep -q "job 1 done" "$work/out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
grep -q "job 1 done" "$work/out" || { kill -KILL "$pid" 2>/dev/null; cat "$work/out" >&2; fail "pm start: no job line within 20 s"; }
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || { cat "$work/out" >&2; fail "pm start exited $status after SIGTERM"; }
cd - >/dev/null

$sudo dpkg -r pm >/dev/null
[ ! -e /usr/bin/pm ] || fail "dpkg -r pm left /usr/bin/pm"
echo "test-deb: $deb ($(du -k "$deb" | cut -f1) KiB) installs, runs and removes"
