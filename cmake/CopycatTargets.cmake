# Compiler settings shared by every target of the project.

if(COPYCAT_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
if(COPYCAT_COVERAGE)
  add_compile_options(--coverage -O0)
  add_link_options(--coverage)
endif()

# copycat_warnings(target): warnings are errors on the project's own code.
function(copycat_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror -Wshadow
                                           -Wnon-virtual-dtor -Wimplicit-fallthrough)
  if(COPYCAT_SANITIZE)
    # GCC 12's flow analysis reports false maybe-uninitialized warnings inside
    # the standard library once ASan instruments it; the normal build keeps
    # the warning as an error.
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()

# copycat_fast_allocator(target): links TCMalloc (gperftools' tcmalloc_minimal)
# into an executable that runs servers. Messages, entries and replies are many
# small allocations made on one thread and freed on another, where glibc's
# malloc locks and consolidates: with TCMalloc copycat-bench does 15-20% more
# operations per second. TCMalloc's heap then grows in huge-page-advised
# mappings (app/huge_page_heap.cpp). Sanitized and coverage builds keep their
# allocator (COPYCAT_FAST_ALLOCATOR is OFF); the engine libraries never impose
# one on a program that embeds them.
option(COPYCAT_TCMALLOC "Link copycatd and copycat-bench with TCMalloc" ON)
if(COPYCAT_TCMALLOC AND NOT COPYCAT_SANITIZE AND NOT COPYCAT_COVERAGE)
  set(COPYCAT_FAST_ALLOCATOR ON)
else()
  set(COPYCAT_FAST_ALLOCATOR OFF)
endif()
function(copycat_fast_allocator target)
  if(NOT COPYCAT_FAST_ALLOCATOR)
    return()
  endif()
  find_library(COPYCAT_TCMALLOC_LIBRARY NAMES tcmalloc_minimal)
  if(NOT COPYCAT_TCMALLOC_LIBRARY)
    message(FATAL_ERROR "TCMalloc (libtcmalloc_minimal) not found: install libgoogle-perftools-dev "
                        "(scripts/install-deps.sh does), or configure with -DCOPYCAT_TCMALLOC=OFF")
  endif()
  target_link_libraries(${target} PRIVATE ${COPYCAT_TCMALLOC_LIBRARY})
  target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/app/huge_page_heap.cpp)
endfunction()

# copycat_protobuf_library(target proto subdir): a static library of the code
# protoc generates from `proto`, compiled without our warning flags. Its
# include directory is SYSTEM, so our sources that include the generated
# header keep -Werror; they include it as "<subdir>/<name>.pb.h".
function(copycat_protobuf_library target proto subdir)
  find_package(Protobuf REQUIRED)
  set(generated ${CMAKE_CURRENT_BINARY_DIR}/generated)
  add_library(${target} STATIC ${proto})
  protobuf_generate(TARGET ${target} LANGUAGE cpp PROTOC_OUT_DIR ${generated}/${subdir})
  target_include_directories(${target} SYSTEM PUBLIC ${generated})
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf)
endfunction()
