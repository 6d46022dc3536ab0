#!/usr/bin/env bash
# Runs one fuzz target the way docs/fuzzing.md describes.
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
# TARGET: procfile | envfile | formation | pm_toml | ports. SECONDS: 180.
# New corpus entries go to fuzz/corpus/TARGET (git-ignored); fuzz/seeds/TARGET
# is read only. With -jobs=1 libFuzzer writes its log to
# fuzz/artifacts/TARGET/fuzz-0.log, and crashes next to it.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]}"
seconds="${2:-180}"
shift $(( $# >= 2 ? 2 : 1 ))
dict=()
if [[ -f "$here/dicts/$target.dict" ]]; then
    dict=("-dict=$here/dicts/$target.dict")
fi
mkdir -p "$here/corpus/$target" "$here/artifacts/$target" || exit
cd "$here/artifacts/$target" || exit
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module...);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir "$here" "$target" \
    "$here/corpus/$target" "$here/seeds/$target" -- \
    -max_total_time="$seconds" -jobs=1 -timeout=10 -print_final_stats=1 \
    "${dict[@]}" "$@"
status=$?
tail -n 8 fuzz-0.log
exit $status
