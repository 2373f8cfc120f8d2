#!/usr/bin/env bash
# Set-up, configure, build and run every test. Exit status is ctest's.
# Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default
set +e
ctest --preset default "$@"
status=$?
set -e
exit $status
