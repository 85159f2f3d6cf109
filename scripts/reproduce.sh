#!/usr/bin/env bash
# Run every experiment, then draw the figures and write results/REPORT.md.
#
#   bash scripts/reproduce.sh [--quick]
#
# Builds nothing: `make reproduce` runs `cargo build --release` first. Stops at
# the first failure and says which step failed; on exit or interrupt it
# removes any topology left behind (`coral-exp down --stale`).
# Environment: RESULTS, FIGURES (output directories), AGAINST (an earlier
# run's results directory: compare the two runs and add the agreement to
# the report), TOPOLOGY (netns, the default, or docker: results of a Docker
# run go to variants suffixed -docker, beside the netns ones).
set -euo pipefail
cd "$(dirname "$0")/.."

# The experiments, in order. Add a name here when `coral-exp run` learns it.
EXPERIMENTS=(
  baseline
  baseline-crash
  fig2-throughput
  fig3-latency
  table1-failover
  table2-integration
  double-fault
  table3-overhead
  detection-sweep
  false-detection
  scale-sweep
  reply-size-sweep
  lb-compare
  # 50 randomized single faults against fresh pairs (10 with --quick).
  fault-campaign
  # Every attack of a hostile LAN host at a live pair under load.
  hostile-input
)

BIN=${CORAL_EXP:-target/release/coral-exp}
RESULTS=${RESULTS:-results}
FIGURES=${FIGURES:-paper-figures}
TOPOLOGY=${TOPOLOGY:-netns}
QUICK=()
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reproduce: unknown argument '$arg' (only --quick)" >&2; exit 2 ;;
  esac
done

if [ ! -x "$BIN" ]; then
  echo "reproduce: $BIN not found; run 'make reproduce' (it builds the release binary first)" >&2
  exit 1
fi

step="starting"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$BIN" down --stale >/dev/null 2>&1 || echo "reproduce: warning: 'coral-exp down --stale' failed; check 'ip netns list'" >&2
  if [ "$rc" -ne 0 ]; then
    echo "reproduce: FAILED at step: $step (exit $rc)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "reproduce: interrupted" >&2; exit 130' INT TERM

# The plan: runs and estimated seconds per experiment (nothing runs yet).
declare -A EST
total_est=0
for exp in "${EXPERIMENTS[@]}"; do
  line=$("$BIN" run "$exp" "${QUICK[@]}" --plan)
  est=${line#*estimate_s=}; est=${est%% *}
  EST[$exp]=$est
  total_est=$((total_est + est))
done
echo "reproduce: ${#EXPERIMENTS[@]} experiments, about $((total_est / 60)) min $((total_est % 60)) s of runs (estimate)"

start=$(date +%s)
i=0
done_est=0
for exp in "${EXPERIMENTS[@]}"; do
  i=$((i + 1))
  elapsed=$(( $(date +%s) - start ))
  left=$((total_est - done_est))
  # Scale the remaining estimate by how the finished experiments compared.
  if [ "$done_est" -gt 0 ]; then left=$((left * elapsed / done_est)); fi
  step="coral-exp run $exp ${QUICK[*]}"
  echo "reproduce: == [$i/${#EXPERIMENTS[@]}] $step (about ${EST[$exp]} s; about $((left / 60)) min $((left % 60)) s left in all)"
  t0=$(date +%s)
  "$BIN" run "$exp" "${QUICK[@]}" --topology "$TOPOLOGY" --results "$RESULTS"
  echo "reproduce: $exp took $(( $(date +%s) - t0 )) s"
  done_est=$((done_est + EST[$exp]))
done

step="coral-exp plot"
echo "reproduce: == $step"
"$BIN" plot --results "$RESULTS" --out "$FIGURES"

AGAINST_ARGS=()
if [ -n "${AGAINST:-}" ]; then
  step="coral-exp compare --against $AGAINST"
  echo "reproduce: == $step"
  "$BIN" compare --results "$RESULTS" --against "$AGAINST"
  AGAINST_ARGS=(--against "$AGAINST")
fi

step="coral-exp report"
echo "reproduce: == $step"
"$BIN" report --results "$RESULTS" --figures "$FIGURES" --out "$RESULTS/REPORT.md" "${AGAINST_ARGS[@]}"

echo "reproduce: done in $(( $(date +%s) - start )) s: $RESULTS/REPORT.md, figures in $FIGURES/"
