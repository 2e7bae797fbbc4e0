#pragma once
// kiln: tensor kernels written inline in C++. This header defines computes and schedules and
// lowers them to loop IR; it includes no LLVM. Include <kiln/build.hpp> where kernels are compiled.
#include "kiln/error.hpp"
#include "kiln/ir/ops.hpp"
#include "kiln/ir/printer.hpp"
#include "kiln/lower/lower.hpp"
#include "kiln/schedule/schedule.hpp"
#include "kiln/te/tensor.hpp"
