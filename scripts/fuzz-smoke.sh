#!/usr/bin/env bash
# Fuzz every parser and codec for a few seconds each and print a table: runs, coverage (libFuzzer's cov = edges, ft = features),
# corpus size and findings per target.
#
#   scripts/fuzz-smoke.sh            every target, FUZZ_SECONDS (default 5) each
#   scripts/fuzz-smoke.sh TARGET...  only these targets
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh   longer runs (make fuzz)
#   FUZZ_CSV=results/fuzz/fuzz.csv ...      also write the table as CSV
#                                           (read by `coral-exp report`)
#
# The targets live in two cargo-fuzz crates: coral/core/fuzz (frames, TCP
# options, shadow state, HTTP framing, every channel's codec, the witness
# state file) and experiments/fuzz (the node's configuration and key file,
# coral-exp's topology.json, summary.json, and the campaign checker's
# switch capture and request lines).
#
# A target fails when it crashes, leaks, times out or runs out of memory
# (a finding: the input is left in CRATE/artifacts/TARGET/), and
# also when it made no runs or its run count or coverage cannot be read
# from libFuzzer's output (a smoke that did nothing must not pass). Every
# target runs even after a failure; the script exits non-zero at the end.
#
# cargo-fuzz needs nightly-only compiler flags (sanitizers); only the stable
# toolchain is installed, so RUSTC_BOOTSTRAP=1 lets stable accept them.
# Installs cargo-fuzz if missing.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz_dirs=("$root/coral/core/fuzz" "$root/experiments/fuzz")
seconds="${FUZZ_SECONDS:-5}"
csv="${FUZZ_CSV:-}"
export RUSTC_BOOTSTRAP=1

case "$seconds" in
'' | *[!0-9]* | 0)
    echo "fuzz-smoke: FUZZ_SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Every target as CRATE_DIR:TARGET, from each crate's `cargo fuzz list`.
all=()
for d in "${fuzz_dirs[@]}"; do
    while read -r t; do
        [ -n "$t" ] && all+=("$d:$t")
    done < <(cd "$d" && cargo fuzz list)
done
targets=()
if [ "$#" -gt 0 ]; then
    for want in "$@"; do
        found=
        for dt in "${all[@]}"; do
            [ "${dt##*:}" = "$want" ] && targets+=("$dt") && found=1
        done
        [ -n "$found" ] || { echo "fuzz-smoke: no fuzz target '$want'" >&2; exit 2; }
    done
else
    targets=("${all[@]}")
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 1
fi

# One build per crate (release, with debug assertions: overflow checks).
build_start=$(date +%s)
for d in "${fuzz_dirs[@]}"; do
    case " ${targets[*]}" in
    *" $d:"*) (cd "$d" && cargo fuzz build --debug-assertions) ;;
    esac
done
build_s=$(($(date +%s) - build_start))

# Last value of a libFuzzer field (`cov: 123`, `stat::...: 456`) in a log;
# empty if absent.
field() {
    grep -oE "$1 *[0-9]+" "$2" | tail -n 1 | grep -oE '[0-9]+$' || true
}

rows=()
failed=()
start=$(date +%s)
for dt in "${targets[@]}"; do
    fuzz_dir="${dt%:*}"
    t="${dt##*:}"
    cd "$fuzz_dir"
    corpus="$fuzz_dir/corpus/$t"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "$fuzz_dir/seeds/$t" ] && dirs+=("$fuzz_dir/seeds/$t")
    echo "fuzz-smoke: $t for ${seconds}s" >&2
    log="$(mktemp)"
    t0=$(date +%s)
    status=ok
    if ! cargo fuzz run --debug-assertions "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=finding
    fi
    took=$(($(date +%s) - t0))
    runs=$(field 'stat::number_of_executed_units:' "$log")
    cov=$(field 'cov:' "$log")
    ft=$(field 'ft:' "$log")
    corp=$(field 'corp:' "$log")
    findings=0
    if [ "$status" = finding ]; then
        findings=1
        tail -n 60 "$log" >&2
        echo "fuzz-smoke: FAILED: $t (input in ${fuzz_dir#"$root"/}/artifacts/$t/)" >&2
    elif [ -z "$runs" ] || [ "$runs" -eq 0 ] || [ -z "$cov" ] || [ -z "$ft" ]; then
        status=no-runs
        tail -n 30 "$log" >&2
        echo "fuzz-smoke: FAILED: $t made no runs or its counts cannot be read" \
            "(runs='$runs' cov='$cov' ft='$ft')" >&2
    fi
    rm -f "$log"
    [ "$status" = ok ] || failed+=("$t")
    rows+=("$t,$took,${runs:-0},${cov:-0},${ft:-0},${corp:-0},$findings,$status")
    echo "fuzz-smoke: $t $status: ${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}" >&2
done
total=$(($(date +%s) - start))

# The table (stdout) and, if asked, the CSV.
header="target,seconds,runs,cov,ft,corpus,findings,status"
{
    echo "$header"
    printf '%s\n' "${rows[@]}"
} | awk -F, '{ printf "%-22s %7s %10s %6s %6s %7s %8s  %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
if [ -n "$csv" ]; then
    case "$csv" in /*) ;; *) csv="$root/$csv" ;; esac
    mkdir -p "$(dirname "$csv")"
    {
        echo "$header"
        printf '%s\n' "${rows[@]}"
    } >"$csv.tmp"
    mv "$csv.tmp" "$csv"
    echo "fuzz-smoke: table written to $csv" >&2
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: ${#failed[@]} of ${#targets[@]} targets FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets passed: ${total}s of fuzzing, ${build_s}s of build" >&2
