# What a file includes, from the compiler's -H: kiln/kiln.hpp (SRC) includes no LLVM; a file of a program
# that compiles kiln's backend once (KILN_SEPARATE_IMPLEMENTATION, kiln/config.hpp) and calls
# graph::compile and onnx::load (JIT_SRC) includes neither LLVM nor protobuf.
foreach(case "${SRC}" "${JIT_SRC};-DKILN_SEPARATE_IMPLEMENTATION")
  list(POP_FRONT case file)
  execute_process(COMMAND ${CXX} -std=c++20 -I${INC} -I${ONNX_INC} ${case} -H -fsyntax-only ${file} ERROR_VARIABLE deps RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${file} does not compile:\n${deps}")
  endif()
  foreach(forbidden "llvm/" "google/protobuf" "onnx/onnx")
    if(deps MATCHES "${forbidden}")
      message(FATAL_ERROR "${file} (${case}) includes ${forbidden} headers")
    endif()
  endforeach()
endforeach()
