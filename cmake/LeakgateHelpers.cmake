# Helpers in the manner of abseil's absl_cc_library: one call per target, sources listed, not globbed.
#
# leakgate_cc_library(NAME name HDRS ... SRCS ... DEPS ... [PRIVATE_DEPS ...] [HDRS_BASE dir])
#   Builds static library leakgate_<name> with alias leakgate::<name> (also its exported name);
#   HDRS, its public headers, live in include/<name>/ (or below HDRS_BASE, which is then the root
#   of every #include of the library, private headers too) and form its HEADERS file set, which is
#   what an install copies. DEPS are linked publicly, PRIVATE_DEPS only into the library (a static
#   library still passes them on to the final link).
# leakgate_cc_binary(NAME name SRCS ... DEPS ...)
#   Builds a program into ${PROJECT_BINARY_DIR}/bin.
# leakgate_cc_test(NAME name SRCS ... DEPS ... [LABELS ...] [TIMEOUT s])
#   Builds a GoogleTest program into ${PROJECT_BINARY_DIR}/tests and registers it with CTest.
# leakgate_cc_benchmark(NAME name SRCS ... DEPS ...)
#   Builds a Google Benchmark program into ${PROJECT_BINARY_DIR}/bench.

set(LEAKGATE_WARNINGS -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)

function(leakgate_cc_library)
  cmake_parse_arguments(ARG "" "NAME;HDRS_BASE" "HDRS;SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  if(NOT ARG_HDRS_BASE)
    set(ARG_HDRS_BASE ${CMAKE_CURRENT_SOURCE_DIR}/include)
  endif()
  add_library(leakgate_${ARG_NAME} STATIC ${ARG_SRCS})
  add_library(leakgate::${ARG_NAME} ALIAS leakgate_${ARG_NAME})
  target_sources(leakgate_${ARG_NAME} PUBLIC
    FILE_SET HEADERS BASE_DIRS ${ARG_HDRS_BASE} FILES ${ARG_HDRS})
  target_link_libraries(leakgate_${ARG_NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  target_compile_options(leakgate_${ARG_NAME} PRIVATE ${LEAKGATE_WARNINGS})
  set_target_properties(leakgate_${ARG_NAME} PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    EXPORT_NAME ${ARG_NAME})
endfunction()

function(leakgate_cc_binary)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  target_compile_options(${ARG_NAME} PRIVATE ${LEAKGATE_WARNINGS})
endfunction()

function(leakgate_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest_main GTest::gmock)
  target_compile_options(${ARG_NAME} PRIVATE ${LEAKGATE_WARNINGS})
  # Shared test helpers: #include "support/....h".
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${ARG_NAME} PRIVATE
    LEAKGATE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    LEAKGATE_BINARY_DIR="${PROJECT_BINARY_DIR}"
    LEAKGATE_SHARED_DATA_DIR="${PROJECT_SOURCE_DIR}/../shared/data")
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  gtest_discover_tests(${ARG_NAME}
    WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
    DISCOVERY_TIMEOUT 30
    PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  # The labels are set once the tests are discovered: gtest_discover_tests (CMake 3.25) flattens a
  # list given in PROPERTIES, so "a;b" became label "a" plus a property named "b".
  set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_labels.cmake)
  file(WRITE ${labels_file}
       "if(${ARG_NAME}_TESTS)\n"
       "  set_tests_properties(\${${ARG_NAME}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\n"
       "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
endfunction()

function(leakgate_cc_benchmark)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  target_compile_options(${ARG_NAME} PRIVATE ${LEAKGATE_WARNINGS})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endfunction()
