#!/usr/bin/env bash
# Makes real Docker, Compose v2 and systemd-in-a-container available on this
# Debian 12 machine with no image registry, only the Debian archive the
# machine's apt uses:
# - Docker (Debian's docker.io), its daemon started in the background unless
#   one already answers, and left running (log: /var/log/dockerd.log);
# - the image debian:bookworm-slim, bootstrapped with mmdebstrap from that
#   archive and imported (kept: skipped when it exists);
# - Compose v2, the Docker CLI plugin from Debian trixie's docker-compose
#   package (bookworm's is v1), fetched with a private apt config so the
#   machine's own sources stay as they are;
# - the image pm-systemd:bookworm, that base with systemd as its init.
# Then proves each works: systemd boots in a container and runs a unit, and a
# two-service Compose project comes up healthy in dependency order.
# Idempotent and quiet; when an engine cannot be set up or started it prints
# one line and exits 1, never skipping it.
# Usage (as root): ci/engines.sh        PM_CI_TIMES=1 prints step timings.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

base_image=debian:bookworm-slim
systemd_image=pm-systemd:bookworm
dockerd_log=/var/log/dockerd.log
# Without these defaults containers fail with "error setting rlimits".
dockerd_args=(--default-ulimit nofile=1024:1024 --default-ulimit nproc=4096:4096)
# The docker CLI's legacy builder: the daemon needs no BuildKit.
export DOCKER_BUILDKIT=0

tmp=$(mktemp -d /var/tmp/pm-ci-engines.XXXXXX)
ci_on_exit "rm -rf '$tmp'"

# debian_sources: the machine's apt entries for Debian bookworm and its
# updates and security suites, as one-line "deb" entries.
debian_sources() {
    python3 - /etc/apt/sources.list /etc/apt/sources.list.d <<'EOF'
import glob, os, sys

def one_line(path):
    for line in open(path):
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        options = []
        if words[1].startswith("["):
            while not words[1].endswith("]"):
                options.append(words.pop(1))
            options.append(words.pop(1))
        yield " ".join(options), words[1], [words[2]], words[3:]

def deb822(path):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled") == ["no"]:
            continue
        key = fields.get("signed-by")
        options = f"[signed-by={key[0]}]" if key and key[0].startswith("/") else ""
        for uri in fields.get("uris", []):
            yield options, uri, fields.get("suites", []), fields.get("components", [])

files = [sys.argv[1]] if os.path.exists(sys.argv[1]) else []
files += sorted(glob.glob(sys.argv[2] + "/*.list")) + sorted(glob.glob(sys.argv[2] + "/*.sources"))
for path in files:
    for options, uri, suites, components in (deb822 if path.endswith(".sources") else one_line)(path):
        for suite in suites:
            if suite.split("-")[0] == "bookworm":
                print(" ".join(w for w in ["deb", options, uri, suite, *components] if w))
EOF
}

install_packages() {
    apt_install docker.io mmdebstrap
}

start_dockerd() {
    docker info >/dev/null 2>&1 && return 0
    # Its own session, so it outlives this script and the job that ran it;
    # setsid -w keeps $! alive exactly as long as dockerd. No descriptor of
    # this script stays open in it (3 is the script's stderr), or a caller
    # reading the script's output through a pipe would wait for dockerd.
    setsid -w dockerd "${dockerd_args[@]}" >>"$dockerd_log" 2>&1 </dev/null 3>&- &
    wait_ready 60 $! dockerd "$dockerd_log" docker info
}

build_base_image() {
    local sources aptopts=() valid_until=""
    local -a mirrors
    docker image inspect "$base_image" >/dev/null 2>&1 && return 0
    sources=$(debian_sources)
    [ -n "$sources" ] || fail "no apt source for Debian bookworm in /etc/apt"
    # A snapshot mirror's Release files are past their Valid-Until; follow
    # the machine's apt in accepting them.
    eval "$(apt-config shell valid_until Acquire::Check-Valid-Until)"
    [ "${valid_until:-}" != false ] || aptopts+=(--aptopt='Acquire::Check-Valid-Until "false"')
    mapfile -t mirrors <<<"$sources"
    mmdebstrap --variant=apt "${aptopts[@]}" bookworm "$tmp/rootfs.tar" "${mirrors[@]}"
    docker import --change 'CMD ["bash"]' "$tmp/rootfs.tar" "$base_image"
    rm -f "$tmp/rootfs.tar"
}

compose_v2() {
    [[ $(docker compose version --short 2>/dev/null) =~ ^v?2\. ]]
}

install_compose() {
    local line apt_dir=$tmp/trixie
    compose_v2 && return 0
    # Trixie, from the same archive as the machine's bookworm entry.
    line=$(debian_sources | awk '{ for (i = 1; i <= NF; i++) if ($i == "bookworm") { print; exit } }')
    [ -n "$line" ] || fail "no apt source for Debian bookworm in /etc/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
    printf '%s\n' "${line/ bookworm/ trixie}" >"$apt_dir/sources.list"
    # apt downloads as the _apt user, into the current directory.
    chown _apt "$apt_dir"
    local apt=(apt-get -qq -o Dir::Etc::SourceList="$apt_dir/sources.list"
        -o Dir::Etc::SourceParts="$apt_dir/parts" -o Dir::Etc::PreferencesParts="$apt_dir/parts"
        -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache")
    "${apt[@]}" update
    (cd "$apt_dir" && "${apt[@]}" download docker-compose)
    dpkg -x "$apt_dir"/docker-compose_*.deb "$apt_dir/root"
    install -D -m 755 "$apt_dir/root/usr/libexec/docker/cli-plugins/docker-compose" \
        /usr/local/lib/docker/cli-plugins/docker-compose
    compose_v2 || fail "docker compose is not v2: $(docker compose version 2>&1)"
}

build_systemd_image() {
    # The builder's cache makes this instant when the image is current.
    docker build -q -t "$systemd_image" - <<EOF
FROM $base_image
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv \\
    && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
}

check_systemd() {
    local name=pm-ci-systemd-$$ state="" deadline=$((SECONDS + 60))
    ci_on_exit "docker rm -f $name"
    docker run -d --name "$name" --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock -e container=docker \
        "$systemd_image" /sbin/init
    until [[ $state == running || $state == degraded ]]; do
        [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] ||
            fail "systemd exited in its container with status" \
                "$(docker inspect -f '{{.State.ExitCode}}' "$name"): $(docker logs "$name" 2>&1 | tail -n 1)"
        [ "$SECONDS" -lt "$deadline" ] || fail "systemd did not finish booting within 60s: $state"
        sleep 0.2
        state=$(docker exec "$name" systemctl is-system-running 2>&1 || true)
    done
    docker exec -i "$name" sh -c 'cat >/etc/systemd/system/pm-probe.service' <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
EOF
    docker exec "$name" systemctl daemon-reload
    docker exec "$name" systemctl start pm-probe.service
    state=$(docker exec "$name" systemctl is-active pm-probe.service || true)
    [ "$state" = active ] || fail "a unit started in the systemd container is $state, not active"
    docker stop "$name"
    docker rm "$name"
}

check_compose() {
    local project=pm-ci-compose-$$ dir=$tmp/compose health
    mkdir -p "$dir"
    cat >"$dir/compose.yaml" <<EOF
services:
  db:
    image: $base_image
    command: ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; sleep infinity & wait"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 5s
      retries: 30
  app:
    image: $base_image
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]
    depends_on:
      db:
        condition: service_healthy
EOF
    local compose=(docker compose -p "$project" -f "$dir/compose.yaml")
    ci_on_exit "${compose[*]} down -t 1"
    "${compose[@]}" up -d --wait --wait-timeout 60
    health=$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q db)")
    [ "$health" = healthy ] || fail "the compose db service is $health, not healthy"
    [ -n "$("${compose[@]}" ps -q --status running app)" ] || fail "the compose app service is not running"
    "${compose[@]}" exec -T app getent hosts db || fail "the compose app service cannot resolve db"
    "${compose[@]}" down -t 5
}

step packages install_packages
step dockerd start_dockerd
step "base image" build_base_image
step compose install_compose
step "systemd image" build_systemd_image
step "systemd check" check_systemd
step "compose check" check_compose
