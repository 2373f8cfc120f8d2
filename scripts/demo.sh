#!/usr/bin/env bash
# The main job: installs what is needed, builds, then runs a backtest offline on a synthetic market
# and, when the GOOG data set is beside the project, on GOOG.csv, printing the statistics as JSON.
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default

echo "== sma_cross on a synthetic BTCUSDT 1H market, 2024 =="
build/bin/backtest --symbol BTCUSDT --timeframe 1H --start 2024-01-01 --end 2025-01-01 \
  --strategy sma_cross --param fast=10 --param slow=30 --sides both

goog="${LEAKGATE_SHARED_DATA:-../shared/data}/GOOG.csv"
if [[ -f "$goog" ]]; then
  echo "== sma_cross(10, 30) on $goog (published: 66 trades, +414.23 %) =="
  build/bin/backtest --csv "$goog" --strategy sma_cross --param fast=10 --param slow=30 \
    --cash 10000 --sides both --warmup 30 --window 31
else
  echo "(skipping the GOOG known answer: $goog not found)"
fi
