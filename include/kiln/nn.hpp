#pragma once
// kiln::nn: operators as compute definitions with default CPU schedules, in the spirit of TVM's TOPI.
// No LLVM here: build the scheduled kernels with kiln/build.hpp.
#include "kiln/kiln.hpp"
#include "kiln/nn/conv2d.hpp"
#include "kiln/nn/matmul.hpp"
