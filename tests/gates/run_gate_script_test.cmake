# Tests LeakgateRunGate.cmake, the script that judges a leak gate, on hand-written results:
#   cmake -DRUN_GATE_SCRIPT=... -DTESTDATA=... -DWORK_DIR=... -P run_gate_script_test.cmake
# testdata/fake_leakgate.sh stands in for the leakgate program (it copies a fixture result and exits
# with its exit code). Each case writes a gate file, runs the script, and checks its exit status and
# that its output says what was expected, what came, and where the result lies.
cmake_minimum_required(VERSION 3.25)

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(failures 0)

# Writes a gate file as leakgate_add_gate does (set(GATE_... [==[value]==]) lines) and sets OUT to
# its path: write_gate(NAME n FIXTURE f EXPECT pass|fail [FAILING ...] [PASSING ...] OUT var)
function(gate_line out variable)
  set(line "set(${variable}")
  foreach(value IN LISTS ARGN)
    string(APPEND line " [==[${value}]==]")
  endforeach()
  set(${out} "${${out}}${line})\n" PARENT_SCOPE)
endfunction()

function(write_gate)
  cmake_parse_arguments(ARG "" "NAME;FIXTURE;EXPECT;OUT" "FAILING;PASSING" ${ARGN})
  set(text "")
  gate_line(text GATE_NAME "${ARG_NAME}")
  gate_line(text GATE_PROGRAM sh "${TESTDATA}/fake_leakgate.sh")
  gate_line(text GATE_SCENARIO "${TESTDATA}/${ARG_FIXTURE}")
  gate_line(text GATE_OUT "${WORK_DIR}/out/${ARG_NAME}")
  gate_line(text GATE_EXPECT "${ARG_EXPECT}")
  gate_line(text GATE_FAILING ${ARG_FAILING})
  gate_line(text GATE_PASSING ${ARG_PASSING})
  gate_line(text GATE_ARGS --set runs=3)
  gate_line(text GATE_TIMEOUT 30)
  set(file "${WORK_DIR}/${ARG_NAME}.cmake")
  file(WRITE "${file}" "${text}")
  set(${ARG_OUT} "${file}" PARENT_SCOPE)
endfunction()

# Runs the script on `gates` and checks the exit status (`ok`: 0; `fails`: not 0) and that the
# output holds each of the remaining arguments.
function(expect_run case gates status)
  execute_process(COMMAND "${CMAKE_COMMAND}" "-DLEAKGATE_GATES=${gates}" -P "${RUN_GATE_SCRIPT}"
                  RESULT_VARIABLE code OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(problems "")
  if(status STREQUAL "ok" AND NOT code EQUAL 0)
    list(APPEND problems "exited ${code}, expected 0")
  elseif(status STREQUAL "fails" AND code EQUAL 0)
    list(APPEND problems "exited 0, expected a failure")
  endif()
  foreach(text IN LISTS ARGN)
    string(FIND "${output}" "${text}" at)
    if(at EQUAL -1)
      list(APPEND problems "output lacks '${text}'")
    endif()
  endforeach()
  if(problems)
    list(JOIN problems "\n    " problems)
    message("FAIL ${case}:\n    ${problems}\n  output was:\n${output}")
    math(EXPR failures "${failures} + 1")
    set(failures ${failures} PARENT_SCOPE)
  else()
    message("ok   ${case}")
  endif()
endfunction()

# The fault fails where it should and passes where it should: the gate is met.
write_gate(NAME met FIXTURE heap-leak.result.json EXPECT fail
           FAILING heap_growth_per_run rss_growth_per_run PASSING fds_stable OUT met)
expect_run("expectation met" "${met}" ok
  "leak-gate met: as expected, verdict fail (exit 1: drift over a threshold)"
  "leakgate: fixture heap-leak.result.json (exit 1)"
  " run ${TESTDATA}/heap-leak.result.json --out ${WORK_DIR}/out/met --set runs=3")

# The wrong expectation: a pass was expected, a fail came. The message says both, names the checks
# with their figures and points at the result.
write_gate(NAME wrong-verdict FIXTURE heap-leak.result.json EXPECT pass OUT wrong_verdict)
expect_run("a fail where a pass was expected" "${wrong_verdict}" fails
  "leak-gate wrong-verdict: expectation not met"
  "expected: verdict pass (exit 0)"
  "got:      verdict fail (exit 1: drift over a threshold)"
  "wrong:    verdict fail, expected pass"
  "wrong:    leakgate exited 1 (drift over a threshold), expected 0"
  "heap_growth_per_run   fail         observed 1.5 MiB/run      threshold 64 KiB/run"
  "rss_growth_total      fail         observed 8 MiB            threshold 2 MiB"
  "idle_cpu_returns      pass         observed 0.4%             threshold 2%"
  "peak_rss              pass         observed -                threshold -"
  "Heap in use grows 1.5 MiB per run."
  "result:   ${WORK_DIR}/out/wrong-verdict/result.json"
  "report:   ${WORK_DIR}/out/wrong-verdict/report.md")

# The right verdict, a check in the wrong state, and a check the result does not have.
write_gate(NAME wrong-checks FIXTURE heap-leak.result.json EXPECT fail
           FAILING fds_stable no_such_check PASSING heap_growth_per_run OUT wrong_checks)
expect_run("checks in the wrong state" "${wrong_checks}" fails
  "expected: verdict fail (exit 1), failing fds_stable, no_such_check, passing heap_growth_per_run"
  "wrong:    check heap_growth_per_run is fail, expected pass"
  "wrong:    check fds_stable is pass, expected fail"
  "wrong:    check no_such_check is not in result.json (its checks: idle_cpu_returns, "
  "<- expected fail")

# A scenario error writes no result: exit 2 is named, and so is the missing result.
write_gate(NAME scenario-error FIXTURE not-a-scenario.json EXPECT fail OUT scenario_error)
expect_run("a scenario error" "${scenario_error}" fails
  "got:      no verdict (exit 2: usage or scenario error)"
  "wrong:    leakgate exited 2 (usage or scenario error), expected 1"
  "/schema: expected \"leakgate.scenario/1\""
  "checks:   none (no result.json: see leakgate's output above)"
  "result:   ${WORK_DIR}/out/scenario-error/result.json (not written)")

write_gate(NAME inconclusive FIXTURE inconclusive.result.json EXPECT pass OUT inconclusive)
expect_run("an inconclusive result" "${inconclusive}" fails
  "got:      verdict inconclusive (exit 4: inconclusive after the maximum number of runs)"
  "rss_growth_per_run    inconclusive observed 293 KiB/run")

# Several gates (the leak-gate target): all run, a summary follows, one miss fails the whole.
expect_run("a summary of several gates" "${met};${wrong_verdict}" fails
  "leak-gate met: as expected"
  "leak-gate wrong-verdict: expectation not met"
  "leak gates: 1 of 2 met their expectation"
  "  ok      met                                 verdict fail (exit 1: drift over a threshold), failing rss_growth_per_run, rss_growth_total, heap_growth_per_run"
  "  MISSED  wrong-verdict                       expected verdict pass (exit 0); got verdict fail (exit 1: drift over a threshold); wrong: verdict fail, expected pass; leakgate exited 1 (drift over a threshold), expected 0"
  "leak gates: 1 did not meet their expectation: wrong-verdict")
expect_run("several gates, all met" "${met};${met}" ok
  "leak gates: all 2 met their expectation")

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} case(s) failed")
endif()
