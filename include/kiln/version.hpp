#pragma once
// kiln's version. CMakeLists.txt reads it from here, so the package version and the one compiled into
// programs (the disk kernel cache keys its entries by it) cannot disagree.
#define KILN_VERSION "0.1.0"
