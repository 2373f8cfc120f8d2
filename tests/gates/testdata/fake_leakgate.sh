#!/bin/sh
# Stands in for the leakgate program in the tests of LeakgateRunGate.cmake:
#   fake_leakgate.sh run FIXTURE --out DIR [more arguments]
# A fixture with an "exit_code" is a result: it is copied to DIR/result.json (with a report.md) and
# the fake exits with that code. Any other file is refused as leakgate refuses a bad scenario: exit 2,
# nothing written.
fixture=$2
out=$4
code=$(sed -n 's/.*"exit_code": *\([0-9][0-9]*\).*/\1/p' "$fixture" | head -n 1)
if [ -z "$code" ]; then
  echo "leakgate: $fixture: /schema: expected \"leakgate.scenario/1\"" >&2
  exit 2
fi
cp "$fixture" "$out/result.json"
echo "# fixture report" >"$out/report.md"
echo "leakgate: fixture $(basename "$fixture") (exit $code)"
exit "$code"
