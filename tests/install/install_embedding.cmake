# The installed package, as a user meets it (cmake -P script; CTest test
# install_embedding, registered in tests/CMakeLists.txt):
#   1. README.md holds examples/embedding/main.cpp and CMakeLists.txt verbatim;
#   2. `cmake --install` of the build tree into a temporary prefix;
#   3. the exported targets pull in no Qt Gui or Widgets;
#   4. every installed header compiles against the installed tree alone, and
#      examples/embedding configures and builds as a separate project against
#      that prefix (same generator and compiler), with warnings as errors;
#   5. the example runs, exits 0 and prints the value it read back.
# Everything happens in a fresh temporary directory, removed at the end
# (kept when COPYCAT_KEEP_TEMP is set in the environment, for debugging).
#
# Input: COPYCAT_SOURCE_DIR, COPYCAT_BINARY_DIR, COPYCAT_GENERATOR,
# COPYCAT_CXX_COMPILER and COPYCAT_CONFIG (-D... on the command line).

cmake_minimum_required(VERSION 3.21)

foreach(var COPYCAT_SOURCE_DIR COPYCAT_BINARY_DIR COPYCAT_GENERATOR COPYCAT_CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_embedding.cmake: -D${var}=... is required")
  endif()
endforeach()
set(example_dir ${COPYCAT_SOURCE_DIR}/examples/embedding)
set(expected_output "greeting = hello, copycat")

# 1. The README shows the example exactly as it is built here.
file(READ ${COPYCAT_SOURCE_DIR}/README.md readme)
foreach(file main.cpp CMakeLists.txt)
  file(READ ${example_dir}/${file} text)
  string(FIND "${readme}" "${text}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "README.md does not contain examples/embedding/${file} verbatim: "
                        "copy the file into the section \"Embedding the engine\"")
  endif()
endforeach()

# A directory of our own: CTest may run several tests at once.
if(DEFINED ENV{TMPDIR} AND IS_DIRECTORY "$ENV{TMPDIR}")
  set(temp_base "$ENV{TMPDIR}")
else()
  set(temp_base /tmp)
endif()
string(TIMESTAMP stamp "%Y%m%d%H%M%S")
foreach(attempt RANGE 100)
  string(RANDOM LENGTH 8 suffix)
  set(work "${temp_base}/copycat-install-${stamp}-${suffix}")
  if(NOT EXISTS "${work}")
    break()
  endif()
endforeach()
file(MAKE_DIRECTORY "${work}")
set(prefix "${work}/prefix")
set(build "${work}/build")
message(STATUS "working in ${work}")

macro(finish)
  if(DEFINED ENV{COPYCAT_KEEP_TEMP})
    message(STATUS "kept ${work}")
  else()
    file(REMOVE_RECURSE "${work}")
  endif()
endmacro()

# Runs a command; on failure prints its output, cleans up and fails.
macro(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out
                  TIMEOUT 600)
  if(NOT status EQUAL 0)
    finish()
    message(FATAL_ERROR "${what} failed (${status}):\n${out}")
  endif()
endmacro()

# 2. Install.
set(config_args "")
if(COPYCAT_CONFIG)
  set(config_args --config ${COPYCAT_CONFIG})
endif()
run("cmake --install" ${CMAKE_COMMAND} --install ${COPYCAT_BINARY_DIR} --prefix ${prefix}
    ${config_args})

# 3. Qt Core and Network only, in the package and in the example's link line.
file(GLOB_RECURSE package_files "${prefix}/*/cmake/Copycat/*.cmake")
if(NOT package_files)
  finish()
  message(FATAL_ERROR "no CMake package under ${prefix}/*/cmake/Copycat")
endif()
foreach(file IN LISTS package_files)
  file(STRINGS "${file}" gui REGEX "Qt6?::(Gui|Widgets)|Qt6?(Gui|Widgets)")
  if(gui)
    finish()
    message(FATAL_ERROR "${file} depends on Qt Gui or Widgets:\n${gui}")
  endif()
endforeach()

# 4. Every installed header compiles against the installed tree alone (it
# includes nothing that was not installed), then the example builds as a
# user's project.
set(user_project_args -G ${COPYCAT_GENERATOR} -DCMAKE_CXX_COMPILER=${COPYCAT_CXX_COMPILER}
                      -DCMAKE_PREFIX_PATH=${prefix} "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Wpedantic -Werror")
if(COPYCAT_CONFIG)
  list(APPEND user_project_args -DCMAKE_BUILD_TYPE=${COPYCAT_CONFIG})
endif()

file(GLOB_RECURSE headers RELATIVE "${prefix}/include/copycat" "${prefix}/include/copycat/*.h")
foreach(unwanted "engine/sim/" "crashable_file_system.h")
  string(FIND "${headers}" "${unwanted}" found)
  if(NOT found EQUAL -1)
    finish()
    message(FATAL_ERROR "a test helper or the simulator was installed: ${unwanted}")
  endif()
endforeach()
if(NOT "engine/server/server.h" IN_LIST headers)
  finish()
  message(FATAL_ERROR "engine/server/server.h is not in ${prefix}/include/copycat")
endif()
set(headers_source "")
foreach(header IN LISTS headers)
  string(APPEND headers_source "#include \"${header}\"\n")
endforeach()
file(WRITE "${work}/headers/all_headers.cpp" "${headers_source}")
file(WRITE "${work}/headers/CMakeLists.txt" "cmake_minimum_required(VERSION 3.21)
project(copycat_headers LANGUAGES CXX)
find_package(Copycat REQUIRED)
add_library(all_headers OBJECT all_headers.cpp)
target_link_libraries(all_headers PRIVATE Copycat::engine)
")
run("configuring the header check" ${CMAKE_COMMAND} -S ${work}/headers -B ${work}/headers-build
    ${user_project_args})
run("compiling every installed header" ${CMAKE_COMMAND} --build ${work}/headers-build
    ${config_args})

run("configuring examples/embedding" ${CMAKE_COMMAND} -S ${example_dir} -B ${build}
    ${user_project_args})
run("building examples/embedding" ${CMAKE_COMMAND} --build ${build} ${config_args})

file(GLOB_RECURSE link_files "${build}/build.ninja" "${build}/*link.txt")
foreach(file IN LISTS link_files)
  file(STRINGS "${file}" gui REGEX "libQt6(Gui|Widgets)")
  if(gui)
    finish()
    message(FATAL_ERROR "the example links Qt Gui or Widgets (${file}):\n${gui}")
  endif()
endforeach()

# 5. Run it.
find_program(example NAMES example PATHS ${build} ${build}/${COPYCAT_CONFIG} NO_DEFAULT_PATH
             NO_CACHE)
if(NOT example)
  finish()
  message(FATAL_ERROR "the example's executable is not in ${build}")
endif()
execute_process(COMMAND ${example} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 120)
message(STATUS "example exited with ${status}; output:\n${out}${err}")
finish()
if(NOT status EQUAL 0)
  message(FATAL_ERROR "the example failed (exit status ${status})")
endif()
string(FIND "${out}" "${expected_output}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "the example did not print \"${expected_output}\"")
endif()
message(STATUS "install_embedding passed")
