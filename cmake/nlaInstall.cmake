# Install rules and the package config, so that an outside project can
#   find_package(nla) ; target_link_libraries(app PRIVATE nla::nla)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS nla EXPORT nlaTargets)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nla DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT nlaTargets NAMESPACE nla:: DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/nla)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nlaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nlaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/nla)
# Header-only: the version file carries no pointer size.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nlaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/nlaConfig.cmake ${PROJECT_BINARY_DIR}/nlaConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/nla)
