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
