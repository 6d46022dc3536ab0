#!/usr/bin/env bash
# Exports examples/hello in every format and checks the result with the
# engines' own validators: systemd-analyze verify, the Compose specification
# schema (tests/data/compose-spec.json) and kubernetes-validate.
# Usage: ci/validate-exports.sh [PM_BINARY]   (default: target/debug/pm)
# A validator that is not installed is skipped with a warning, unless
# PM_REQUIRE_VALIDATORS names it (1 = all, or e.g. compose,kubernetes).
set -euo pipefail
cd "$(dirname "$0")/.."
pm=${1:-target/debug/pm}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

required() {
    [ "${PM_REQUIRE_VALIDATORS:-}" = 1 ] || [[ ",${PM_REQUIRE_VALIDATORS:-}," == *",$1,"* ]]
}
missing() {
    if required "$1"; then
        echo "error: the $1 validator is not installed" >&2
        exit 1
    fi
    echo "warning: the $1 validator is not installed; not checking $1 exports" >&2
}

# Every bundled example, with its own formation and settings.
for example in hello shop; do
    app=(-f "examples/$example/Procfile" --app "$example")
    dir="$out/$example"
    "$pm" export systemd "$dir/systemd" "${app[@]}" --user "$example"
    "$pm" export compose "$dir/compose" "${app[@]}" --image "$example:1"
    "$pm" export kubernetes "$dir/kubernetes" "${app[@]}" --image "$example:1"

    if command -v systemd-analyze >/dev/null; then
        report=$(systemd-analyze verify "$dir/systemd/$example.target" "$dir"/systemd/*.service 2>&1)
        if [ -n "$report" ]; then
            echo "$report" >&2
            exit 1
        fi
        echo "$example: systemd: ok"
    else
        missing systemd
    fi
    if python3 -c 'import yaml, jsonschema' 2>/dev/null; then
        python3 ci/validate-exports.py compose "$dir/compose" tests/data/compose-spec.json >/dev/null
        echo "$example: compose: ok"
    else
        missing compose
    fi
    if command -v kubernetes-validate >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
        python3 ci/validate-exports.py kubernetes "$dir/kubernetes" >/dev/null
        echo "$example: kubernetes: ok"
    else
        missing kubernetes
    fi
done
