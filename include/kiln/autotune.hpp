#pragma once
// Auto-tuning: knob spaces measured on this machine, records of every measurement, and the best record
// applied at start-up. See docs/tuning.md.
#include "kiln/autotune/measure.hpp"
#include "kiln/autotune/records.hpp"
#include "kiln/autotune/task.hpp"
#include "kiln/autotune/scheduler.hpp"
#include "kiln/autotune/tune.hpp"
#include "kiln/autotune/sketch.hpp"
