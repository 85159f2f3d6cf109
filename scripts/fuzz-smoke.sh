#!/usr/bin/env bash
# Fuzz every parser and codec of coral-core for a few seconds each.
#
#   scripts/fuzz-smoke.sh            every target, FUZZ_SECONDS (default 5) each
#   scripts/fuzz-smoke.sh TARGET...  only these targets
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh   longer runs (make fuzz)
#
# cargo-fuzz needs nightly-only compiler flags (sanitizers); only the stable
# toolchain is installed, so RUSTC_BOOTSTRAP=1 lets stable accept them.
# Installs cargo-fuzz if missing. Exits non-zero on the first crash; the
# crashing input is left in coral/core/fuzz/artifacts/TARGET/.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz_dir="$root/coral/core/fuzz"
seconds="${FUZZ_SECONDS:-5}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$fuzz_dir"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 1
fi

# One build for all targets (release, with debug assertions: overflow checks).
cargo fuzz build --debug-assertions

start=$(date +%s)
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "$fuzz_dir/seeds/$t" ] && dirs+=("$fuzz_dir/seeds/$t")
    echo "fuzz-smoke: $t for ${seconds}s" >&2
    log="$(mktemp)"
    if ! cargo fuzz run --debug-assertions "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        rm -f "$log"
        echo "fuzz-smoke: FAILED: $t (input in coral/core/fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    rm -f "$log"
    echo "fuzz-smoke: $t ok, $runs runs" >&2
done
echo "fuzz-smoke: ${#targets[@]} targets passed in $(( $(date +%s) - start ))s of fuzzing" >&2
