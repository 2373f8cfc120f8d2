# What `cmake --install` puts in the prefix, and the package another project finds with
# find_package(leakgate):
#
#   bin/leakgate                          the program (imported target leakgate::leakgate)
#   lib/libleakgate_agent.so              the allocation agent (leakgate::agent); always in lib/,
#                                         where the program looks for it: ../lib beside itself
#   <libdir>/libleakgate_base.a           leakgate::base, headers in include/base/
#   <libdir>/libleakgate_harness.a        leakgate::harness, headers in include/harness/<stage>/
#   <libdir>/libleakgate_reports.a        leakgate::reports, headers in include/reports/
#   include/leakgate/agent.h              the agent's API
#   <libdir>/cmake/leakgate/              leakgateConfig.cmake, leakgateConfigVersion.cmake,
#                                         leakgateTargets.cmake, LeakgateGate.cmake,
#                                         LeakgateRunGate.cmake
#
# The reference service and its scenarios are a separate component, installed only when asked
# (`cmake --install <build> --component reference`): bin/backtest_server beside leakgate, where the
# scenarios' ${BIN} finds it, and share/leakgate/scenarios/. They are a demo, not part of the package,
# and `backtest_server` is too common a name to put into a prefix unasked. Tests and benchmarks are
# never installed.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LEAKGATE_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/leakgate"
    CACHE STRING "Where the package's CMake files are installed, relative to the prefix")

install(TARGETS leakgate leakgate_base leakgate_harness leakgate_reports leakgate_agent
  EXPORT leakgateTargets
  RUNTIME DESTINATION bin
  LIBRARY DESTINATION lib
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT leakgateTargets
  NAMESPACE leakgate::
  DESTINATION ${LEAKGATE_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/leakgateConfig.cmake.in
  ${PROJECT_BINARY_DIR}/leakgateConfig.cmake
  INSTALL_DESTINATION ${LEAKGATE_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/leakgateConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/leakgateConfig.cmake
    ${PROJECT_BINARY_DIR}/leakgateConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/LeakgateGate.cmake
    ${PROJECT_SOURCE_DIR}/cmake/LeakgateRunGate.cmake
  DESTINATION ${LEAKGATE_INSTALL_CMAKEDIR})

install(TARGETS backtest_server
  RUNTIME DESTINATION bin
  COMPONENT reference
  EXCLUDE_FROM_ALL)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/scenarios/
  DESTINATION ${CMAKE_INSTALL_DATADIR}/leakgate/scenarios
  COMPONENT reference
  EXCLUDE_FROM_ALL)
