# The one-definition check of docs/design.md ("One program, two compilers").
#
# A GPU program links g++ and nvcc objects that define the same inline
# functions and template instances; the linker keeps one copy of each, so
# the objects must agree on every layout. With NLA_ODR_CHECK the objects of
# the targets handed to nla_check_one_definition also carry GCC's
# intermediate code (fat LTO objects), and an incremental LTO link
# (-flinker-output=rel: types are merged, no code is generated) fails the
# build with -Werror=odr on any type laid out differently. The programs
# themselves link without LTO: g++'s linker plugin would otherwise run it on
# fat objects unasked and lose nvcc's fatbinary on the way. nvcc's host
# compiler must be this g++ (its default), whose intermediate code it reads.

include(CMakeDependentOption)
cmake_dependent_option(NLA_ODR_CHECK
  "Check that programs linking g++ and nvcc objects agree on every type's layout" ON
  "NLA_ENABLE_CUDA;CMAKE_CXX_COMPILER_ID STREQUAL GNU" OFF)
if(NLA_ODR_CHECK)
  target_link_options(nla_project_options INTERFACE -fno-lto)
endif()

# nla_check_one_definition(<program> <target>...): the objects of the
# targets, which <program> links together, checked as one.
function(nla_check_one_definition program)
  if(NOT NLA_ODR_CHECK)
    return()
  endif()
  set(objects)
  foreach(target IN LISTS ARGN)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-flto=auto -ffat-lto-objects>
      $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-flto=auto,-ffat-lto-objects>)
    list(APPEND objects $<TARGET_OBJECTS:${target}>)
  endforeach()
  add_custom_command(
    OUTPUT ${program}.odr-check.o
    COMMAND ${CMAKE_CXX_COMPILER} -flto -fopenmp -Wodr -Werror=odr -r -flinker-output=rel
            ${objects} -o ${program}.odr-check.o
    DEPENDS ${ARGN} ${objects}
    COMMENT "Checking that ${program}'s g++ and nvcc objects agree on every layout (-Wodr)"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_custom_target(${program}_odr_check ALL DEPENDS ${program}.odr-check.o)
endfunction()
