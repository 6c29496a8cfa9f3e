# Finds cpp-httplib as Debian ships it (a compiled library with only a pkg-config
# file) and defines the imported target CppHttplib::CppHttplib.
# Used by aifc's own build and, for a static libaifc, by aifcConfig.cmake (find_dependency).
include(FindPackageHandleStandardArgs)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_CPPHTTPLIB QUIET IMPORTED_TARGET cpp-httplib)
endif()
find_package_handle_standard_args(CppHttplib REQUIRED_VARS PC_CPPHTTPLIB_FOUND VERSION_VAR PC_CPPHTTPLIB_VERSION)
if(CppHttplib_FOUND AND NOT TARGET CppHttplib::CppHttplib)
  add_library(CppHttplib::CppHttplib INTERFACE IMPORTED)
  target_link_libraries(CppHttplib::CppHttplib INTERFACE PkgConfig::PC_CPPHTTPLIB)
endif()
