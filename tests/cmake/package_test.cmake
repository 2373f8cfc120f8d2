# Installs a leakgate build into a temporary prefix and proves that another project can use it:
#   cmake -DLEAKGATE_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=...
#         -DCXX_COMPILER=... -DBUILD_TYPE=... -P package_test.cmake
# Steps: cmake --install into WORK_DIR/prefix (only the package: no test or benchmark program);
# configure, build and ctest the consumer against it; build its leak-gate target. The prefix is
# removed whatever happens; the consumer's build folder stays when a step failed.
cmake_minimum_required(VERSION 3.25)

set(prefix "${WORK_DIR}/prefix")
set(consumer "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(failure "")
# Runs a step unless one failed already; on failure records it with the command's output.
function(step what)
  if(failure)
    return()
  endif()
  string(TIMESTAMP start "%s")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE output ERROR_VARIABLE output)
  string(TIMESTAMP end "%s")
  math(EXPR seconds "${end} - ${start}")
  if(NOT code EQUAL 0)
    list(JOIN ARGN " " command)
    message("${output}")
    set(failure "${what} failed (exit ${code}, its output above): ${command}" PARENT_SCOPE)
    return()
  endif()
  message("package: ${what} (${seconds} s)")
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

step("install into ${prefix}" "${CMAKE_COMMAND}" --install "${LEAKGATE_BUILD_DIR}" --prefix "${prefix}"
     --config "${BUILD_TYPE}")

# Only the package: the program, the agent, the libraries, their headers and the CMake files.
if(NOT failure)
  file(GLOB_RECURSE installed RELATIVE "${prefix}" "${prefix}/*")
  set(unexpected "")
  foreach(file IN LISTS installed)
    if(NOT file MATCHES "^(bin/leakgate|lib/libleakgate_agent\\.so|lib[^/]*/libleakgate_(base|harness|reports)\\.a|include/(base|reports|leakgate)/[a-z_]+\\.h|include/harness/(scenario|drive|sample|profile|analyze|gate)/[a-z_]+\\.h|lib[^/]*/cmake/leakgate/[A-Za-z-]+\\.cmake)$")
      list(APPEND unexpected "${file}")
    endif()
  endforeach()
  foreach(file IN ITEMS bin/leakgate lib/libleakgate_agent.so include/harness/gate/scenario_gate.h
                        include/base/units.h)
    if(NOT EXISTS "${prefix}/${file}")
      list(APPEND unexpected "(missing) ${file}")
    endif()
  endforeach()
  # The harness installs the headers a user calls, not its parsers and helpers.
  foreach(file IN ITEMS include/harness/sample/proc_parser.h include/harness/sample/process_sampler.h
                        include/harness/scenario/json_messages.h include/harness/profile/preload.h
                        include/harness/profile/heap_profile_source.h)
    if(EXISTS "${prefix}/${file}")
      list(APPEND unexpected "(private) ${file}")
    endif()
  endforeach()
  if(unexpected)
    list(JOIN unexpected "\n  " unexpected)
    set(failure "the install holds what it should not, or lacks what it should:\n  ${unexpected}")
  endif()
endif()

step("configure the consumer" "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${consumer}"
     -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
     "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(NOT failure AND NOT step_output MATCHES "leakgate [0-9.]+ from ${prefix}/")
  message("${step_output}")
  set(failure "the consumer did not find leakgate in ${prefix} (its configure output above)")
endif()
step("build the consumer" "${CMAKE_COMMAND}" --build "${consumer}")
step("ctest in the consumer" "${CMAKE_CTEST_COMMAND}" --test-dir "${consumer}" --output-on-failure)
if(NOT failure)
  message("${step_output}")
endif()
step("the consumer's leak-gate target" "${CMAKE_COMMAND}" --build "${consumer}" --target leak-gate)
if(NOT failure)
  string(REGEX MATCH "leak gates: all [^\n]*" summary "${step_output}")
  message("package: ${summary}")
endif()

file(REMOVE_RECURSE "${prefix}")
if(failure)
  message(FATAL_ERROR "package: ${failure}\n(the consumer's build is kept in ${consumer})")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
message("package: the installed package builds, tests and gates a project of its own")
