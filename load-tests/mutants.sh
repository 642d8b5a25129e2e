#!/usr/bin/env bash
# Mutation testing of tollgate-filters against its own tests (no socket, no database):
# cargo-mutants changes the code one small way at a time (an operator, a condition, a
# function's result) and runs `cargo test -p tollgate-filters`; a mutant the tests do not
# notice is "missed". Equivalent mutants (no test could notice them) are listed, each with
# its reason, in .cargo/mutants.toml. Prints the score (caught + timed out, over the
# viable mutants) for the crate and for metering.rs, usage/ and limits.rs, and exits 1
# when a full run is below the targets (85% for the crate, 90% for each of those three).
# About two hours on 2 cores for the whole crate (~2,500 mutants, ~3 s each with -j2);
# installs cargo-mutants if missing.
# Usage: load-tests/mutants.sh [cargo-mutants options, e.g. --file filters/src/limits.rs]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
out=${MUTANTS_OUT:-target/mutants}
mkdir -p "$out"
# cargo-mutants exits 2 when some mutants are missed and 3 when some timed out: the score
# below says how many. Anything else (the unmutated tests failing, say) is an error.
rc=0
cargo mutants -p tollgate-filters -o "$out" "$@" || rc=$?
case $rc in 0 | 2 | 3) ;; *) exit "$rc" ;; esac
dir="$out/mutants.out"
score() { # score LABEL PREFIX TARGET
  local c t m
  c=$(grep -c "^$2" "$dir/caught.txt" || true)
  t=$(grep -c "^$2" "$dir/timeout.txt" || true)
  m=$(grep -c "^$2" "$dir/missed.txt" || true)
  awk -v l="$1" -v c="$c" -v t="$t" -v m="$m" -v target="$3" 'BEGIN {
    n = c + t + m; s = n ? 100 * (c + t) / n : 100
    printf "%-24s %6d caught %4d timeout %4d missed  %5.1f%% (target %d%%)\n", l, c, t, m, s, target
    exit (s < target) }'
}
echo "mutation score of tollgate-filters ($(date -u +%Y-%m-%d)):"
ok=0
score "crate" "filters/" 85 || ok=1
score "metering.rs" "filters/src/metering.rs" 90 || ok=1
score "usage/" "filters/src/usage/" 90 || ok=1
score "limits.rs" "filters/src/limits.rs" 90 || ok=1
echo "missed mutants: $dir/missed.txt"
# A partial run (options given) reports without judging.
[ $# -gt 0 ] || exit $ok
