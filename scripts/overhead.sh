#!/usr/bin/env bash
# Overhead of leakgate's allocation agent next to the other heap profilers, measured in one run on
# one workload: the offline backtest of the reference system on five years of synthetic 1-minute
# bars (about 2.6 million bars and 5 million allocations, about 1.1 s plain). Each configuration runs
# REPEAT times (default 3), interleaved, and its median wall time (and median CPU time, user + system
# of the program and its children, steadier on a shared machine) is compared with the plain run's.
# Each profiler writes one profile, at exit. Then a micro benchmark: the cost of one malloc/free and
# one new/delete pair with and without the agent. A tool that is not installed is skipped, and said
# so.
# Usage: scripts/overhead.sh [REPEAT]   (BUILD_DIR=path for a build other than build/; CONFIGS="plain
# agent" for only those configurations, out of plain agent agent-exact gperftools heaptrack massif)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-3}
build=${BUILD_DIR:-build}
backtest=$build/bin/backtest
agent=$(realpath -m "$build/lib/libleakgate_agent.so")
pairs=$build/tests/agent_malloc_pairs
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4
for file in "$backtest" "$agent" "$pairs"; do
  [[ -e $file ]] || {
    echo "overhead: $file is missing; build first (cmake --preset default && cmake --build --preset default)" >&2
    exit 2
  }
done
workload=("$backtest" --symbol BTCUSDT --timeframe 1m --start 2018-01-01 --end 2023-01-01)
out=$(mktemp -d /tmp/leakgate-overhead-XXXXXX)
trap 'rm -rf "$out"' EXIT

# Runs the workload under configuration $1.
run_under() {
  case $1 in
    plain) "${workload[@]}" ;;
    agent) env LD_PRELOAD="$agent" LEAKGATE_AGENT_PREFIX="$out/agent" LEAKGATE_AGENT_DUMP_AT_EXIT=1 \
      "${workload[@]}" ;;
    agent-exact) env LD_PRELOAD="$agent" LEAKGATE_AGENT_PREFIX="$out/exact" LEAKGATE_AGENT_DUMP_AT_EXIT=1 \
      LEAKGATE_AGENT_SAMPLE=0 "${workload[@]}" ;;
    # Intervals large enough that only the exit profile is written, as for the agent.
    gperftools) env LD_PRELOAD="$tcmalloc" HEAPPROFILE="$out/gperftools" TCMALLOC_STACKTRACE_METHOD=libgcc \
      HEAP_PROFILE_ALLOCATION_INTERVAL=1099511627776 HEAP_PROFILE_INUSE_INTERVAL=1099511627776 \
      "${workload[@]}" ;;
    heaptrack) heaptrack -o "$out/heaptrack" "${workload[@]}" ;;
    massif) valgrind --tool=massif --massif-out-file="$out/massif.%p" "${workload[@]}" ;;
  esac
}
declare -A label=(
  [plain]="plain"
  [agent]="agent, default (512 KiB)"
  [agent-exact]="agent, exact"
  [gperftools]="gperftools heap profiler, exact"
  [heaptrack]="heaptrack"
  [massif]="valgrind massif"
)
configs=(plain agent agent-exact)
skipped=()
if [[ -e $tcmalloc ]]; then configs+=(gperftools); else
  skipped+=("gperftools heap profiler: $tcmalloc not found (Debian package libgoogle-perftools4)")
fi
if command -v heaptrack >/dev/null; then configs+=(heaptrack); else
  skipped+=("heaptrack: not installed (Debian package heaptrack)")
fi
if command -v valgrind >/dev/null; then configs+=(massif); else
  skipped+=("valgrind massif: not installed (Debian package valgrind)")
fi
if [[ -n ${CONFIGS:-} ]]; then
  read -r -a wanted <<<"$CONFIGS"
  for config in "${wanted[@]}"; do
    if [[ " ${configs[*]} " != *" $config "* ]]; then
      echo "overhead: configuration '$config' in CONFIGS is unknown or not installed here" >&2
      exit 2
    fi
  done
  if [[ ${wanted[0]} != plain ]]; then
    echo "overhead: CONFIGS must start with plain, the reference of the ratios" >&2
    exit 2
  fi
  configs=("${wanted[@]}")
  skipped=()
fi

echo "workload: ${workload[*]}"
if readelf -d "$backtest" | grep -q 'libtcmalloc'; then
  echo "allocator: $backtest links tcmalloc"
else
  echo "allocator: glibc's malloc ($backtest does not link tcmalloc)"
fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "runs: $repeat of each configuration, interleaved"
declare -A wall=() cpu=()
TIMEFORMAT='%R %U %S'  # bash's `time`: wall, then user and system of the run and its children
for ((r = 1; r <= repeat; r++)); do
  for config in "${configs[@]}"; do
    if ! { time run_under "$config" >"$out/stdout" 2>"$out/stderr"; } 2>"$out/time"; then
      echo "overhead: '${label[$config]}' failed:" >&2
      tail -n 5 "$out/stderr" >&2
      exit 1
    fi
    read -r seconds user system <"$out/time"
    wall[$config]+="$seconds "
    cpu[$config]+="$(echo "$user + $system" | bc) "
    printf '  run %d  %-34s %7.2f s wall %7.2f s cpu\n' "$r" "${label[$config]}" "$seconds" \
      "$(echo "$user + $system" | bc)" >&2
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
plain_wall=$(median "${wall[plain]}")
plain_cpu=$(median "${cpu[plain]}")
echo
printf '%-34s %8s %7s %8s %7s\n' "configuration" "wall s" "ratio" "cpu s" "ratio"
for config in "${configs[@]}"; do
  w=$(median "${wall[$config]}")
  c=$(median "${cpu[$config]}")
  printf '%-34s %8.2f %6.2fx %8.2f %6.2fx\n' "${label[$config]}" "$w" "$(echo "$w / $plain_wall" | bc -l)" \
    "$c" "$(echo "$c / $plain_cpu" | bc -l)"
done
for line in "${skipped[@]}"; do echo "skipped: $line"; done

# What the agent saw, from its exit profile.
profile=$(ls "$out"/agent.*.heap 2>/dev/null | tail -n 1 || true)
if [[ -n $profile ]]; then
  echo "allocations in one run: $(grep -o 'exact_alloc_objects=[0-9]*' "$profile" | cut -d= -f2)" \
    "(from the agent's exit profile)"
fi

echo
echo "micro benchmark: $pairs (best of 5 runs of 2 million pairs)"
printf '%-34s %16s %16s\n' "configuration" "malloc+free ns" "new+delete ns"
bench() {
  local name=$1
  shift
  local result
  result=$("$@" "$pairs")
  printf '%-34s %16s %16s\n' "$name" "$(awk '/^malloc_free_ns/ {print $2}' <<<"$result")" \
    "$(awk '/^new_delete_ns/ {print $2}' <<<"$result")"
}
bench "plain" env
bench "agent, default (512 KiB)" env LD_PRELOAD="$agent"
bench "agent, exact" env LD_PRELOAD="$agent" LEAKGATE_AGENT_SAMPLE=0
