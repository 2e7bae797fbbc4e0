#pragma once
// ONNX element type codes (TensorProto.DataType) and the kiln types that hold them.
#include <string>

#include "kiln/error.hpp"
#include "kiln/ir/type.hpp"

namespace kiln::graph {

inline Type dtype_from_onnx(int64_t code, const std::string& where) {
    switch (code) {
        case 1: return f32;
        case 2: return u8;
        case 3: return i8;
        case 5: return i16;
        case 6: return i32;
        case 7: return i64;
        case 9: return boolean;
        case 10: return f16;
        case 11: return f64;
        case 12: return u32;
        default: break;
    }
    static const char* names[] = {"UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",  "INT16",
                                  "INT32",     "INT64",  "STRING",    "BOOL",       "FLOAT16", "DOUBLE",
                                  "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    const std::string nm = code >= 0 && code < 17 ? names[code] : "code " + std::to_string(code);
    kiln::detail::fail(where, ": element type ", nm,
                       " is not supported; kiln handles FLOAT, DOUBLE, FLOAT16, INT8/16/32/64, UINT8/32 and BOOL");
}

inline int onnx_code(Type t) {
    if (t == f32) return 1;
    if (t == u8) return 2;
    if (t == i8) return 3;
    if (t == i16) return 5;
    if (t == i32) return 6;
    if (t == i64) return 7;
    if (t.is_bool()) return 9;
    if (t == f16) return 10;
    if (t == f64) return 11;
    if (t == u32) return 12;
    kiln::detail::fail("type ", t.str(), " has no ONNX element type");
}

}  // namespace kiln::graph
