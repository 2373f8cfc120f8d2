#[=======================================================================[.rst:
LeakgateGate
------------

Leak gates in a CMake build: a scenario run by ``leakgate run`` becomes a CTest test and a step of
the ``leak-gate`` build target, each with an expected verdict. Inside the leakgate project the module
is included from ``cmake/``; another project gets it with ``find_package(leakgate)``.

.. command:: leakgate_add_gate

  ::

    leakgate_add_gate(NAME <name> SCENARIO <scenario.json>
                      [EXPECT pass | EXPECT fail [<check>...]]
                      [PASSING <check>...]
                      [ARGS <arg>...]
                      [TIMEOUT <seconds>]
                      [DEPENDS <target>...]
                      [LABELS <label>...])

  ``NAME``
    The gate's name: letters, digits, ``_``, ``.``, ``+`` and ``-``. It names the CTest test
    ``leak-gate.<name>``, the build target ``leak-gate.<name>`` and the output folder.
  ``SCENARIO``
    The scenario file (``leakgate.scenario/1``); a relative path is taken from the current source
    folder. A file generated at build time (for example with ``file(GENERATE)``, whose generator
    expressions can name a program built here as the target) must lie in the build tree.
  ``EXPECT pass``
    The default: leakgate's verdict must be ``pass`` (exit code 0).
  ``EXPECT fail <check>...``
    The verdict must be ``fail`` (exit code 1) and each listed check (a ``checks[].name`` of
    result.json, such as ``heap_growth_per_run``, ``rss_growth_per_run``, ``rss_growth_total``,
    ``idle_cpu_returns``, ``fds_stable``, ``sockets_stable``, ``threads_stable``, ``peak_rss``) must
    have failed. With no check listed, any failing check will do.
  ``PASSING <check>...``
    These checks must be in the result and have passed (a fault that should fail on heap growth
    alone, say, must leave ``fds_stable`` passing).
  ``ARGS <arg>...``
    More arguments for ``leakgate run``, such as ``--runs 3`` or ``--set cooldown.max_s=5``. They may
    hold generator expressions (``--set target.spawn.argv.0=$<TARGET_FILE:my_service>``). Write a
    scenario placeholder as ``\${OUT}`` so that CMake leaves it alone. ``--out`` is the gate's own.
  ``TIMEOUT <seconds>``
    The longest a gate may take (default 600). leakgate is then sent SIGTERM, which stops its target,
    and the gate fails as timed out; the CTest test's own TIMEOUT is 60 s longer, as a last resort.
  ``DEPENDS <target>...``
    Targets to build before the gate runs from ``leak-gate`` or ``leak-gate.<name>``: the program
    under test, leakgate's agent (``leakgate_agent``) when the project builds it. The leakgate
    program itself is added when it is built in the same project.
  ``LABELS <label>...``
    CTest labels besides ``leak-gate``.

What runs: ``cmake -P LeakgateRunGate.cmake`` (beside this file) runs
``leakgate run <scenario> --out <out> <args>``, prints leakgate's console output, reads
``<out>/result.json`` with ``string(JSON)`` and compares the verdict, the exit code and the listed
checks with the expectation. Any other outcome (exit 2: usage or scenario error, 3: the target failed,
4: inconclusive, a timeout, a listed check in another state or missing) fails with a message saying
what was expected and what came, every check with its verdict, observed value and threshold, and where
result.json and report.md lie. Nothing beyond CMake and the leakgate program is needed.

Output folder: ``${CMAKE_BINARY_DIR}/leak-gate/<name>/`` (result.json, report.md, junit.xml, the
target's logs and heap profiles), emptied before each run.

The CTest test ``leak-gate.<name>`` carries the labels ``leak-gate`` and LABELS, and runs alone
(``RUN_SERIAL``): a gate times its target's cooldowns and compares idle CPU with a baseline, and on a
small machine tests running beside it (other gates, or tests that drive services of their own) slow
the target enough to turn a clear verdict into an inconclusive one. A project whose other tests are
light may set ``LEAKGATE_GATE_RUN_SERIAL`` to OFF before the call: its gates then only hold the
resource lock ``leak-gate``, which keeps two gates from overlapping while other tests run beside them.

The build target ``leak-gate`` (``cmake --build <build> --target leak-gate``) builds the leakgate
program and every gate's DEPENDS, then runs every gate one after another in the order they were
added, prints a summary, and fails the build when a gate did not meet its expectation. The target
``leak-gate.<name>`` does the same for one gate. Neither is part of ``all``.

Which leakgate program runs: ``LEAKGATE_EXECUTABLE`` when set (a path, before the call); otherwise
the target ``leakgate::leakgate``, which is the ``leakgate`` program inside the leakgate project and
the installed program after ``find_package(leakgate)``.

Example::

  find_package(leakgate 0.1 REQUIRED)
  leakgate_add_gate(NAME service-clean SCENARIO gates/service.json DEPENDS my_service)
  leakgate_add_gate(NAME service-leaky SCENARIO gates/service.json
                    ARGS --set target.spawn.argv.2=--leak
                    EXPECT fail heap_growth_per_run fds_stable
                    PASSING threads_stable idle_cpu_returns
                    DEPENDS my_service)
#]=======================================================================]

include_guard(GLOBAL)

# Writes `set(<variable> <values>)` with each value as a bracket argument, so that the gate file
# keeps spaces, quotes, `${...}` and backslashes exactly as given.
function(_leakgate_gate_file_set out variable)
  set(line "set(${variable}")
  foreach(value IN LISTS ARGN)
    if(value MATCHES "\\]=*\\]")
      message(FATAL_ERROR "leakgate_add_gate: an argument may not contain ']]' or ']=...=]': ${value}")
    endif()
    string(APPEND line " [==[${value}]==]")
  endforeach()
  string(APPEND line ")\n")
  set(${out} "${${out}}${line}" PARENT_SCOPE)
endfunction()

function(leakgate_add_gate)
  cmake_parse_arguments(PARSE_ARGV 0 ARG "" "NAME;SCENARIO;TIMEOUT"
                        "EXPECT;PASSING;ARGS;DEPENDS;LABELS")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "leakgate_add_gate: unknown arguments '${ARG_UNPARSED_ARGUMENTS}'; "
                        "expected NAME, SCENARIO, EXPECT, PASSING, ARGS, TIMEOUT, DEPENDS, LABELS")
  endif()
  if(NOT ARG_NAME MATCHES "^[A-Za-z0-9_.+-]+$")
    message(FATAL_ERROR "leakgate_add_gate: NAME '${ARG_NAME}' must be letters, digits, '_', '.', "
                        "'+' or '-' (it names a test, a target and a folder)")
  endif()
  set(what "leakgate_add_gate(NAME ${ARG_NAME})")
  if(TARGET leak-gate.${ARG_NAME})
    message(FATAL_ERROR "${what}: a gate of that name exists already")
  endif()

  if(NOT ARG_SCENARIO)
    message(FATAL_ERROR "${what}: SCENARIO <file> is required")
  endif()
  cmake_path(ABSOLUTE_PATH ARG_SCENARIO BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" NORMALIZE
             OUTPUT_VARIABLE scenario)
  cmake_path(IS_PREFIX CMAKE_BINARY_DIR "${scenario}" NORMALIZE scenario_generated)
  if(NOT EXISTS "${scenario}" AND NOT scenario_generated)
    message(FATAL_ERROR "${what}: SCENARIO ${scenario} does not exist")
  endif()

  set(expect pass)
  set(failing "")
  if(DEFINED ARG_EXPECT OR "EXPECT" IN_LIST ARG_KEYWORDS_MISSING_VALUES)
    list(POP_FRONT ARG_EXPECT expect)
    if(NOT expect MATCHES "^(pass|fail)$")
      message(FATAL_ERROR "${what}: EXPECT takes 'pass' or 'fail <check>...', got '${expect}'")
    endif()
    set(failing ${ARG_EXPECT})
    if(expect STREQUAL "pass" AND failing)
      message(FATAL_ERROR "${what}: EXPECT pass lists no checks; got '${failing}' "
                          "(name checks that must pass with PASSING)")
    endif()
  endif()
  foreach(check IN LISTS ARG_PASSING)
    if(check IN_LIST failing)
      message(FATAL_ERROR "${what}: check '${check}' is listed both as failing and as PASSING")
    endif()
  endforeach()
  foreach(arg IN LISTS ARG_ARGS)
    if(arg MATCHES "^--out(=|$)")
      message(FATAL_ERROR "${what}: ARGS may not set --out: the gate writes to its own folder")
    endif()
  endforeach()
  set(timeout 600)
  if(DEFINED ARG_TIMEOUT)
    if(NOT ARG_TIMEOUT MATCHES "^[1-9][0-9]*$")
      message(FATAL_ERROR "${what}: TIMEOUT takes whole seconds, got '${ARG_TIMEOUT}'")
    endif()
    set(timeout ${ARG_TIMEOUT})
  endif()

  # The leakgate program, and the target that builds it when it is built here.
  set(program_target "")
  if(LEAKGATE_EXECUTABLE)
    set(program "${LEAKGATE_EXECUTABLE}")
  elseif(TARGET leakgate::leakgate)
    set(program "$<TARGET_FILE:leakgate::leakgate>")
    get_target_property(imported leakgate::leakgate IMPORTED)
    if(NOT imported)
      get_target_property(program_target leakgate::leakgate ALIASED_TARGET)
    endif()
  else()
    message(FATAL_ERROR "${what}: no leakgate program: call find_package(leakgate) first, or set "
                        "LEAKGATE_EXECUTABLE to the path of a leakgate program")
  endif()

  set(out "${CMAKE_BINARY_DIR}/leak-gate/${ARG_NAME}")
  # One file per configuration: the program's path may differ between configurations.
  set(gate_file "${CMAKE_CURRENT_BINARY_DIR}/leak-gate.dir/${ARG_NAME}.$<CONFIG>.cmake")
  set(content "# leak gate ${ARG_NAME}, read by LeakgateRunGate.cmake\n")
  _leakgate_gate_file_set(content GATE_NAME "${ARG_NAME}")
  _leakgate_gate_file_set(content GATE_PROGRAM "${program}")
  _leakgate_gate_file_set(content GATE_SCENARIO "${scenario}")
  _leakgate_gate_file_set(content GATE_OUT "${out}")
  _leakgate_gate_file_set(content GATE_EXPECT "${expect}")
  _leakgate_gate_file_set(content GATE_FAILING ${failing})
  _leakgate_gate_file_set(content GATE_PASSING ${ARG_PASSING})
  _leakgate_gate_file_set(content GATE_ARGS ${ARG_ARGS})
  _leakgate_gate_file_set(content GATE_TIMEOUT "${timeout}")
  file(GENERATE OUTPUT "${gate_file}" CONTENT "${content}")

  set(run_gate_script "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/LeakgateRunGate.cmake")
  set(run_one "${CMAKE_COMMAND}" "-DLEAKGATE_GATES=${gate_file}" -P "${run_gate_script}")

  add_test(NAME leak-gate.${ARG_NAME} COMMAND ${run_one})
  math(EXPR ctest_timeout "${timeout} + 60")
  set(labels leak-gate ${ARG_LABELS})
  set_tests_properties(leak-gate.${ARG_NAME} PROPERTIES
    LABELS "${labels}"
    TIMEOUT ${ctest_timeout}
    RESOURCE_LOCK leak-gate)
  if(NOT DEFINED LEAKGATE_GATE_RUN_SERIAL OR LEAKGATE_GATE_RUN_SERIAL)
    set_tests_properties(leak-gate.${ARG_NAME} PROPERTIES RUN_SERIAL ON)
  endif()

  add_custom_target(leak-gate.${ARG_NAME}
    COMMAND ${run_one}
    COMMENT "leak gate ${ARG_NAME}: leakgate run ${ARG_SCENARIO} (expected: ${expect} ${failing})"
    USES_TERMINAL
    VERBATIM)
  # The gates of `leak-gate` run in one command, one after another, with a summary at the end; its
  # list of gate files is read when the build files are generated, so gates added later count.
  if(NOT TARGET leak-gate)
    add_custom_target(leak-gate
      COMMAND "${CMAKE_COMMAND}"
              "-DLEAKGATE_GATES=$<TARGET_GENEX_EVAL:leak-gate,$<TARGET_PROPERTY:leak-gate,LEAKGATE_GATE_FILES>>"
              -P "${run_gate_script}"
      COMMENT "leak gates: running every gate, one after another"
      USES_TERMINAL
      VERBATIM)
  endif()
  set_property(TARGET leak-gate APPEND PROPERTY LEAKGATE_GATE_FILES "${gate_file}")
  foreach(target IN ITEMS leak-gate leak-gate.${ARG_NAME})
    if(program_target)
      add_dependencies(${target} ${program_target})
    endif()
    if(ARG_DEPENDS)
      add_dependencies(${target} ${ARG_DEPENDS})
    endif()
  endforeach()
endfunction()
