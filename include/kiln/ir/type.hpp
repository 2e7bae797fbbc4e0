#pragma once
// Scalar and vector types of the IR. A Type is a value: code, bits and lane count.
#include <cstdint>
#include <string>

#include "kiln/error.hpp"

namespace kiln {

enum class TypeCode : std::uint8_t { Int, UInt, Float, Bool, Handle };

struct Type {
    TypeCode code = TypeCode::Int;
    std::uint8_t bits = 32;
    std::uint16_t lanes = 1;

    constexpr bool is_int() const { return code == TypeCode::Int; }
    constexpr bool is_uint() const { return code == TypeCode::UInt; }
    constexpr bool is_float() const { return code == TypeCode::Float; }
    constexpr bool is_bool() const { return code == TypeCode::Bool; }
    constexpr bool is_handle() const { return code == TypeCode::Handle; }
    // Integer-like types take part in index arithmetic.
    constexpr bool is_integer() const { return is_int() || is_uint(); }
    constexpr bool is_scalar() const { return lanes == 1; }
    constexpr bool is_vector() const { return lanes > 1; }
    constexpr Type element_of() const { return Type{code, bits, 1}; }
    constexpr Type with_lanes(int n) const { return Type{code, bits, static_cast<std::uint16_t>(n)}; }
    constexpr int bytes() const { return is_bool() ? 1 : bits / 8; }
    constexpr bool operator==(const Type&) const = default;

    std::string str() const {
        std::string s;
        switch (code) {
            case TypeCode::Int: s = "i" + std::to_string(bits); break;
            case TypeCode::UInt: s = "u" + std::to_string(bits); break;
            case TypeCode::Float: s = "f" + std::to_string(bits); break;
            case TypeCode::Bool: s = "bool"; break;
            case TypeCode::Handle: s = "handle"; break;
        }
        if (lanes > 1) s += "x" + std::to_string(lanes);
        return s;
    }
};

inline constexpr Type boolean{TypeCode::Bool, 1, 1};
inline constexpr Type i8{TypeCode::Int, 8, 1};
inline constexpr Type i16{TypeCode::Int, 16, 1};
inline constexpr Type i32{TypeCode::Int, 32, 1};
inline constexpr Type i64{TypeCode::Int, 64, 1};
inline constexpr Type u8{TypeCode::UInt, 8, 1};
inline constexpr Type u32{TypeCode::UInt, 32, 1};
// f16 is a storage type: loads widen it to f32, stores narrow back.
inline constexpr Type f16{TypeCode::Float, 16, 1};
inline constexpr Type f32{TypeCode::Float, 32, 1};
inline constexpr Type f64{TypeCode::Float, 64, 1};
inline constexpr Type handle{TypeCode::Handle, 64, 1};

// The C++ element type that matches a kiln Type, for typed pointers at call time.
template <typename T> constexpr Type type_of() {
    if constexpr (std::is_same_v<T, bool>)
        return boolean;
    else if constexpr (std::is_same_v<T, std::int8_t>)
        return i8;
    else if constexpr (std::is_same_v<T, std::int16_t>)
        return i16;
    else if constexpr (std::is_same_v<T, std::int32_t>)
        return i32;
    else if constexpr (std::is_same_v<T, std::int64_t>)
        return i64;
    else if constexpr (std::is_same_v<T, std::uint8_t>)
        return u8;
    else if constexpr (std::is_same_v<T, std::uint32_t>)
        return u32;
    else if constexpr (std::is_same_v<T, float>)
        return f32;
    else if constexpr (std::is_same_v<T, double>)
        return f64;
    else
        return handle;
}

}  // namespace kiln
