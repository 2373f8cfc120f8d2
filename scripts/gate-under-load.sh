#!/usr/bin/env bash
# Robustness figure: runs the reference-after gate N times (default 20) while another process keeps
# one core busy, and prints how many passed. Every run must pass: a clean service never fails the gate
# because the machine is noisy.
# Usage: scripts/gate-under-load.sh [N]   (expects a build in build/; see README)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
[[ -x build/bin/leakgate && -x build/bin/backtest_server ]] || {
  echo "gate-under-load: build first (cmake --preset default && cmake --build --preset default)" >&2
  exit 2
}
out=$(mktemp -d /tmp/leakgate-load-XXXXXX)
# The neighbour: a busy loop on one core, stopped on every exit path.
( while :; do :; done ) &
burner=$!
trap 'kill $burner 2>/dev/null; wait $burner 2>/dev/null || true' EXIT INT TERM

passed=0
declare -A verdicts=()
for ((i = 1; i <= n; i++)); do
  set +e
  CI=true build/bin/leakgate run scenarios/reference-after.json --out "$out/run-$i" >"$out/run-$i.txt" 2>&1
  code=$?
  set -e
  verdict=$(grep -o '^verdict: [A-Z]*' "$out/run-$i.txt" | head -n1 | cut -d' ' -f2)
  wall=$(grep -o '"wall_s": [0-9.]*' "$out/run-$i/result.json" 2>/dev/null | head -n1 | cut -d' ' -f2)
  cool=$(grep -o '"cooldown_total_s": [0-9.]*' "$out/run-$i/result.json" 2>/dev/null | head -n1 | cut -d' ' -f2)
  printf 'gate %2d: exit %d %-5s wall %6.1f s, of which cooldown %5.1f s\n' "$i" "$code" "${verdict:-?}" "${wall:-0}" "${cool:-0}"
  [[ $code -eq 0 ]] && passed=$((passed + 1))
  verdicts[${verdict:-?}]=$(( ${verdicts[${verdict:-?}]:-0} + 1 ))
done
echo "reference-after under one busy core: $passed of $n gates passed (results in $out)"
[[ $passed -eq $n ]]
