# Finds libssh through its pkg-config file and defines the imported target LibSSH::LibSSH.
# Used by aifc's own build and, for a static libaifc, by aifcConfig.cmake (find_dependency).
include(FindPackageHandleStandardArgs)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_LIBSSH QUIET IMPORTED_TARGET libssh)
endif()
find_package_handle_standard_args(LibSSH REQUIRED_VARS PC_LIBSSH_FOUND VERSION_VAR PC_LIBSSH_VERSION)
if(LibSSH_FOUND AND NOT TARGET LibSSH::LibSSH)
  add_library(LibSSH::LibSSH INTERFACE IMPORTED)
  target_link_libraries(LibSSH::LibSSH INTERFACE PkgConfig::PC_LIBSSH)
endif()
