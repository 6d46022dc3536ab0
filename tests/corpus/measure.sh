#!/bin/sh
# Runs the corpus scenarios (tests/it/corpus.rs) against this checkout's pm and
# prints each fixture's figures: "Address already in use" per restart, restart
# counts, stop signals per process at Ctrl-C, whether the watchers stayed up,
# survivors after Ctrl-C and after SIGKILL of pm. Failing scenarios still
# print their figures; the details of each failure are left out here.
#
# Usage, from anywhere in the repository: tests/corpus/measure.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
cargo test --test it corpus:: -- --nocapture 2>&1 |
  awk '/ figures:$/ { show = 1 } show { print } /^$/ { show = 0 } /^test result/ { print }'
