# Every C and C++ file of kiln follows .clang-format (clang-format 14, Debian 12's): lists those that do not.
file(GLOB_RECURSE files ${SRC}/include/*.hpp ${SRC}/frontends/*.hpp ${SRC}/runtime/*.h ${SRC}/runtime/*.hpp ${SRC}/runtime/*.cpp
     ${SRC}/tools/*.cpp ${SRC}/tests/*.hpp ${SRC}/tests/*.cpp ${SRC}/tests/*.c ${SRC}/examples/*.cpp ${SRC}/examples/*.c
     ${SRC}/bench/*.cpp ${SRC}/bench/*.hpp)
set(bad "")
foreach(f ${files})
  execute_process(COMMAND ${CLANG_FORMAT} --dry-run --Werror ${f} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    string(APPEND bad "  ${f}\n")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "not formatted as .clang-format says; run clang-format-14 -i on:\n${bad}")
endif()
