# The installed CMake package of the headless engine. `cmake --install` puts
# the engine's public headers, its static libraries and a package
# configuration in place, so that another project writes
#
#     find_package(Copycat REQUIRED)
#     target_link_libraries(app PRIVATE Copycat::engine)
#
# Copycat::engine brings every engine library (Qt Core + Qt Network, never Qt
# Gui or Widgets); each one is also exported alone (Copycat::raft,
# Copycat::server, ...). The simulator and test helpers are not installed.
# Included once from the top CMakeLists.txt, after the engine's targets exist.
# The installed layout:
#   include/copycat/engine/<layer>/*.h    (the code's own include paths, with
#                                          the protoc-generated *.pb.h)
#   lib/libcopycat_*.a
#   lib/cmake/Copycat/                     CopycatConfig.cmake, version, targets

# The core-only build has neither the protocol nor the server.
if(COPYCAT_CORE_ONLY)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(COPYCAT_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/copycat)
set(COPYCAT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Copycat)

# The engine libraries Copycat::engine brings. The project's own targets they
# link (such as the protoc-generated libraries) are added below.
set(_copycat_roots copycat_raft copycat_storage copycat_protocol copycat_api copycat_kv
                   copycat_server)
if(TARGET copycat_client)
  list(APPEND _copycat_roots copycat_client)
endif()

# The project's own (non-imported) targets that `target` links, directly or
# through $<LINK_ONLY:...> (a static library's private dependencies).
function(_copycat_linked_targets target out)
  get_target_property(links ${target} INTERFACE_LINK_LIBRARIES)
  set(found "")
  if(links)
    foreach(item IN LISTS links)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" item "${item}")
      if(TARGET "${item}")
        get_target_property(imported ${item} IMPORTED)
        get_target_property(aliased ${item} ALIASED_TARGET)
        if(aliased)
          set(item ${aliased})
        endif()
        if(NOT imported)
          list(APPEND found ${item})
        endif()
      endif()
    endforeach()
  endif()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

set(_copycat_exported "")
set(_copycat_pending ${_copycat_roots})
while(_copycat_pending)
  list(POP_FRONT _copycat_pending _target)
  if(_target IN_LIST _copycat_exported)
    continue()
  endif()
  if(_target MATCHES "^copycat_sim")
    message(FATAL_ERROR "${_target} would be installed: the simulator is not part of the engine")
  endif()
  list(APPEND _copycat_exported ${_target})
  _copycat_linked_targets(${_target} _linked)
  list(APPEND _copycat_pending ${_linked})
endwhile()

# Protobuf_VERSION, which the package configuration asks for.
find_package(Protobuf REQUIRED)

# Rewrites the usage requirements of `target` for the installed tree; the
# build itself is unchanged. Paths into the source and build trees hold only
# in the build tree (the installed headers are in include/copycat). The build
# finds xxHash and cereal by path; the installed package finds them again on
# the user's machine as Copycat::xxhash and Copycat::cereal (see
# CopycatConfig.cmake.in). Other absolute paths are kept as they are.
function(_copycat_prepare_export target)
  set(uses_cereal FALSE)
  foreach(property INTERFACE_INCLUDE_DIRECTORIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES)
    get_target_property(dirs ${target} ${property})
    if(NOT dirs)
      continue()
    endif()
    set(rewritten "")
    foreach(dir IN LISTS dirs)
      cmake_path(IS_PREFIX PROJECT_SOURCE_DIR "${dir}" NORMALIZE in_source)
      cmake_path(IS_PREFIX PROJECT_BINARY_DIR "${dir}" NORMALIZE in_build)
      if(in_source OR in_build)
        list(APPEND rewritten "$<BUILD_INTERFACE:${dir}>")
      elseif(dir STREQUAL CEREAL_INCLUDE_DIR)
        list(APPEND rewritten "$<BUILD_INTERFACE:${dir}>")
        set(uses_cereal TRUE)
      else()
        list(APPEND rewritten "${dir}")
      endif()
    endforeach()
    list(REMOVE_DUPLICATES rewritten)
    set_property(TARGET ${target} PROPERTY ${property} "${rewritten}")
  endforeach()
  if(uses_cereal)
    set_property(TARGET ${target} APPEND PROPERTY INTERFACE_LINK_LIBRARIES
                                                  "$<INSTALL_INTERFACE:Copycat::cereal>")
  endif()

  # xxHash is a private dependency of a static library: users link it, they
  # do not compile against it.
  get_target_property(links ${target} INTERFACE_LINK_LIBRARIES)
  if(links AND XXHASH_LIBRARY)
    set(rewritten "")
    set(installed "$<INSTALL_INTERFACE:$<LINK_ONLY:Copycat::xxhash>>")
    foreach(item IN LISTS links)
      if(item STREQUAL XXHASH_LIBRARY OR item STREQUAL "$<LINK_ONLY:${XXHASH_LIBRARY}>")
        set(item "$<BUILD_INTERFACE:${item}>${installed}")
      endif()
      list(APPEND rewritten "${item}")
    endforeach()
    set_property(TARGET ${target} PROPERTY INTERFACE_LINK_LIBRARIES "${rewritten}")
  endif()

  # Users' code includes headers that need C++20 (concepts).
  set_property(TARGET ${target} APPEND PROPERTY INTERFACE_COMPILE_FEATURES cxx_std_20)

  # Copycat::raft, Copycat::server, Copycat::protocol_wire...
  string(REGEX REPLACE "^copycat_" "" name ${target})
  set_property(TARGET ${target} PROPERTY EXPORT_NAME ${name})
endfunction()

foreach(_target IN LISTS _copycat_exported)
  _copycat_prepare_export(${_target})
endforeach()

# Copycat::engine: everything above in one name.
add_library(copycat_engine INTERFACE)
add_library(Copycat::engine ALIAS copycat_engine)
target_link_libraries(copycat_engine INTERFACE ${_copycat_roots})
target_compile_features(copycat_engine INTERFACE cxx_std_20)
set_property(TARGET copycat_engine PROPERTY EXPORT_NAME engine)

install(TARGETS copycat_engine ${_copycat_exported}
  EXPORT CopycatTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${COPYCAT_INSTALL_INCLUDEDIR})

# Headers: each exported library's own directory (engine/<layer>/*.h, the
# test helper CrashableFileSystem excepted), and the headers protoc generated
# into the build tree, at the paths the code includes them by.
set(_copycat_header_dirs "")
set(_copycat_generated_dirs "")
foreach(_target IN LISTS _copycat_exported)
  get_target_property(_dir ${_target} SOURCE_DIR)
  list(APPEND _copycat_header_dirs ${_dir})
  get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  foreach(_include IN LISTS _includes)
    if(_include MATCHES "^\\$<BUILD_INTERFACE:(.*)>$")
      cmake_path(IS_PREFIX PROJECT_BINARY_DIR "${CMAKE_MATCH_1}" NORMALIZE _generated)
      if(_generated)
        list(APPEND _copycat_generated_dirs ${CMAKE_MATCH_1})
      endif()
    endif()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _copycat_header_dirs)
list(REMOVE_DUPLICATES _copycat_generated_dirs)
foreach(_dir IN LISTS _copycat_header_dirs)
  file(RELATIVE_PATH _relative ${PROJECT_SOURCE_DIR} ${_dir})
  install(DIRECTORY ${_dir}/
    DESTINATION ${COPYCAT_INSTALL_INCLUDEDIR}/${_relative}
    FILES_MATCHING PATTERN "*.h"
    PATTERN "crashable_file_system.h" EXCLUDE)
endforeach()
foreach(_dir IN LISTS _copycat_generated_dirs)
  install(DIRECTORY ${_dir}/
    DESTINATION ${COPYCAT_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.h")
endforeach()

install(EXPORT CopycatTargets
  NAMESPACE Copycat::
  DESTINATION ${COPYCAT_INSTALL_CMAKEDIR})

# The dependencies' versions the package was built with.
set(COPYCAT_QT_MIN_VERSION 6.4)
set(COPYCAT_PROTOBUF_VERSION ${Protobuf_VERSION})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/CopycatConfig.cmake.in
  ${PROJECT_BINARY_DIR}/CopycatConfig.cmake
  INSTALL_DESTINATION ${COPYCAT_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/CopycatConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/CopycatConfig.cmake
              ${PROJECT_BINARY_DIR}/CopycatConfigVersion.cmake
  DESTINATION ${COPYCAT_INSTALL_CMAKEDIR})

unset(_copycat_roots)
unset(_copycat_exported)
unset(_copycat_pending)
unset(_copycat_header_dirs)
unset(_copycat_generated_dirs)
