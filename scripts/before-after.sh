#!/usr/bin/env bash
# The main job: the incident document's before/after verification, measured. Installs what is
# needed, builds, then runs the leak gate on the reference backtest service twice — with its five
# root causes switched on ("before", expected to fail: exit 1) and with the fixes in place ("after",
# expected to pass) — and compares the two results: each check before and after, the state after
# each run, the growth per run, and every site that grew before with whether it is gone after.
# Results land in OUT/before/ and OUT/after/ (result.json, report.md, report.html, the target's
# logs), the comparison in OUT/compare.md and OUT/compare.html.
# Exit status 0 when the comparison shows the fix; non-zero otherwise, the reason on the last line.
# Usage: scripts/before-after.sh [OUT] [extra leakgate run arguments, e.g. --runs 8]
#   OUT defaults to $LEAKGATE_BEFORE_AFTER_OUT, else leakgate-out/before-after in the project.
#   LEAKGATE_LANG=zh writes the comparison in Chinese; LEAKGATE_BUILD_DIR=DIR builds and runs from
#   DIR instead of the default preset's build/.
set -euo pipefail
start_s=$SECONDS
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

out="${LEAKGATE_BEFORE_AFTER_OUT:-$root/leakgate-out/before-after}"
if [[ $# -gt 0 && $1 != -* ]]; then
  out="$1"
  shift
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"  # absolute, so the paths printed at the end work from anywhere
lang="${LEAKGATE_LANG:-en}"

fail() {  # message: the last line, then a non-zero exit
  echo "before-after: ❌ $1 ($((SECONDS - start_s)) s)" >&2
  exit "${2:-1}"
}

cd "$root"
scripts/setup.sh
if [[ -n ${LEAKGATE_BUILD_DIR:-} ]]; then
  build="$LEAKGATE_BUILD_DIR"
  if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
else
  build="$root/build"
  if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake --preset default >/dev/null
  fi
fi
# Only what the two gates need: the gate, the service, and the allocation agent it preloads.
cmake --build "$build" --target leakgate backtest_server leakgate_agent
leakgate="$build/bin/leakgate"

# Both gates measure the same way. The agent samples one allocation per 64 KiB instead of its
# default 512 KiB: a site leaking about 1 MiB per run then gets some 16 samples a run, and every
# one of the seeded faults is named (at 512 KiB one of them goes unnamed in about one gate in five).
# Same measuring on both sides: "gone" after means the finer sampling did not see it either.
measure=(--set 'heap_profile={"profiler":"agent","sample":"64KiB"}')

# Runs one gate; leaves its exit status in $gate_status. A status the gate cannot end with when the
# comparison is to mean anything (a scenario error, a target that failed) stops the script.
run_gate() {  # side scenario expected_exit [leakgate run arguments...]
  local side=$1 scenario=$2 expected=$3
  shift 3
  echo
  echo "== $side: leakgate run scenarios/$scenario.json (expected exit $expected) =="
  set +e
  "$leakgate" run "scenarios/$scenario.json" --out "$out/$side" "${measure[@]}" "$@"
  gate_status=$?
  set -e
  case $gate_status in
    2) fail "the $side gate could not run its scenario (exit 2: usage or scenario error, see above)" 2 ;;
    3) fail "the $side gate's target failed (exit 3: did not start, crashed or hung; logs in $out/$side/)" 3 ;;
  esac
  if [[ ! -f $out/$side/result.json ]]; then
    fail "the $side gate exited $gate_status without writing $out/$side/result.json" 2
  fi
}

run_gate before reference-before 1 "$@"
case $gate_status in
  1) ;;
  0) fail "the before gate passed (exit 0): the seeded faults were not caught, so no fix can be shown" ;;
  4) fail "the before gate was inconclusive (exit 4): the seeded faults were not caught within its runs" ;;
  *) fail "the before gate exited $gate_status, expected 1" ;;
esac
run_gate after reference-after 0 "$@"
after_status=$gate_status
case $after_status in
  0 | 1 | 4) ;;  # 1 (drift) and 4 (inconclusive): the comparison below shows what is left
  *) fail "the after gate exited $after_status, expected 0" ;;
esac

echo
echo "== leakgate compare $out/before/result.json $out/after/result.json =="
set +e
"$leakgate" compare "$out/before/result.json" "$out/after/result.json" --lang "$lang" \
  --out "$out" >"$out/compare.log"
compare_status=$?
set -e
if [[ $compare_status -eq 2 || ! -f $out/compare.md ]]; then
  fail "leakgate compare failed (exit $compare_status, see above)" 2
fi
# The headline, the effect of the fix (the document's 修复前 / 修复后), the checks and the state after
# each run; the growth per run and the sites are in compare.md and compare.html.
awk '/^## / && ++headings == 4 { exit } { print }' "$out/compare.md"
echo "(growth per run and what grew, site by site: $out/compare.md)"
echo "comparison page: $out/compare.html"
echo "before report: $out/before/report.html"
echo "after report: $out/after/report.html"
elapsed=$((SECONDS - start_s))
case $compare_status in
  0)
    echo "before-after: ✅ the fix is shown: the before gate fails, the after gate passes, and every check that failed before passes after (${elapsed} s)"
    exit 0
    ;;
  1)
    # The comparison's headline says why: its first bold line.
    reason="$(grep -m1 '^\*\*' "$out/compare.md" | sed -e 's/\*\*//g' -e 's/^❌ //' || true)"
    fail "${reason:-the comparison does not show the fix} (after gate exit $after_status)" 1
    ;;
  *) fail "leakgate compare ended with exit $compare_status" 2 ;;
esac
