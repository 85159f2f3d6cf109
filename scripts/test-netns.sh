#!/usr/bin/env bash
# Namespace integration tests (coral/tests/netns_*.rs and
# experiments/tests/netns_*.rs): real network namespaces, run as root, one
# test at a time (they share 2 cores). Fails if no namespace test ran, or if
# a test namespace (cxt*, ct*) is left.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
if [ "$(id -u)" != 0 ]; then
  echo "test-netns: must run as root (network namespaces)" >&2
  exit 1
fi
leftover() { ls /run/netns 2>/dev/null | grep -E '^(cxt[0-9a-f]{4}|ct[a-z]+[0-9]+)-' || true; }
# Test namespaces from an earlier, interrupted run (nothing else uses these
# prefixes): remove them and their processes, so this run starts clean.
for ns in $(leftover); do
  echo "test-netns: removing stale test namespace $ns" >&2
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
done
# Docker containers the kit created (label org.coral-kit.prefix): the ones
# there before the tests may be a user's live topology; any new one left
# after them is a test that did not clean up.
kit_containers() {
  command -v docker >/dev/null 2>&1 || return 0
  docker ps -aq --filter label=org.coral-kit.prefix 2>/dev/null | sort || true
}
containers_before=$(kit_containers)
# The tests start sibling binaries (coral, webstone-server, coral-load)
# next to the test binaries: build them first.
$CARGO build --workspace --all-targets  # same feature set as `make build`: no rebuild
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
rc=0
for pkg in coral experiments; do
  $CARGO test -p "$pkg" --no-fail-fast --test 'netns_*' -- --test-threads=1 2>&1 | tee -a "$log"
  r=${PIPESTATUS[0]}
  [ "$r" != 0 ] && rc=$r
done
set -e
ran=$(grep -cE '^test netns_[a-z0-9_]+ \.\.\. ok$' "$log" || true)
left=$(leftover)
if [ -n "$left" ]; then
  echo "test-netns: FAIL: namespaces left behind:" >&2
  echo "$left" >&2
  exit 1
fi
new_containers=$(comm -13 <(echo "$containers_before") <(kit_containers) | grep . || true)
if [ -n "$new_containers" ]; then
  echo "test-netns: FAIL: Docker containers left behind (remove with coral-exp down --stale):" >&2
  echo "$new_containers" >&2
  exit 1
fi
if [ "$rc" != 0 ]; then
  echo "test-netns: FAIL: cargo test exited $rc" >&2
  exit "$rc"
fi
if [ "$ran" -eq 0 ]; then
  echo "test-netns: FAIL: no namespace test ran" >&2
  exit 1
fi
echo "test-netns: $ran namespace tests passed, no namespace left"
