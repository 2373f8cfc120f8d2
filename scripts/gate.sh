#!/usr/bin/env bash
# The main job: installs what is needed, builds, then runs the leak gate on the reference backtest
# service twice — with the incident's fixes in place ("after", must pass) and with its five root causes
# switched on ("before", must fail) — printing each verification table and verdict. Results land in
# leakgate-out/reference-after/ and leakgate-out/reference-before/ (result.json, the target's logs).
# Exit status 0 when both verdicts are the expected ones.
# Usage: scripts/gate.sh [extra leakgate run arguments, e.g. --runs 8]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default

status=0
run_gate() {  # name expected_exit
  echo
  echo "== leakgate run scenarios/$1.json (expected exit $2) =="
  set +e
  build/bin/leakgate run "scenarios/$1.json" --out "leakgate-out/$1" "${@:3}"
  local code=$?
  set -e
  if [[ $code -ne $2 ]]; then
    echo "gate: $1 exited $code, expected $2" >&2
    status=1
  fi
}
run_gate reference-after 0 "$@"
# Without the fixes, idle CPU never returns to the baseline: a short cooldown cap keeps this run quick.
run_gate reference-before 1 --set cooldown.max_s=5 "$@"
echo
if [[ $status -eq 0 ]]; then
  echo "gate: the fixed service passes and the incident's build fails, as expected"
fi
exit $status
