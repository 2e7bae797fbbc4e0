#pragma once
// Reading and writing numpy .npy files (format 1.0-3.0, little-endian, C order) as kiln Buffers: how
// model inputs and outputs travel between kiln, numpy and ONNX Runtime.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/runtime/buffer.hpp"

namespace kiln::npy {

namespace detail {
inline std::string descr_of(Type t) {
    if (t == f32) return "<f4";
    if (t == f64) return "<f8";
    if (t == f16) return "<f2";
    if (t == i64) return "<i8";
    if (t == i32) return "<i4";
    if (t == i16) return "<i2";
    if (t == i8) return "|i1";
    if (t == u8) return "|u1";
    if (t == u32) return "<u4";
    if (t.is_bool()) return "|b1";
    kiln::detail::fail("npy: type ", t.str(), " has no numpy equivalent");
}
inline Type type_of_descr(const std::string& d, const std::string& path) {
    static const std::pair<const char*, Type> table[] = {{"<f4", f32}, {"<f8", f64},    {"<f2", f16}, {"<i8", i64},
                                                         {"<i4", i32}, {"<i2", i16},    {"|i1", i8},  {"|u1", u8},
                                                         {"<u4", u32}, {"|b1", boolean}};
    for (auto& [k, t] : table)
        if (d == k) return t;
    kiln::detail::fail("npy '", path, "': element type '", d,
                       "' is not supported (little-endian float, int, uint8 and bool are)");
}
}  // namespace detail

// Reads a .npy file held in memory; `where` names it in messages. Everything is checked against the
// bytes there are before anything is allocated: a header that declares more elements than follow it is
// refused, not allocated.
inline Buffer load_from_bytes(std::string_view data, const std::string& where) {
    auto fail = [&](const auto&... a) { kiln::detail::fail("npy '", where, "': ", a...); };
    if (data.size() < 10 || std::memcmp(data.data(), "\x93NUMPY", 6) != 0) fail("not a .npy file (bad magic)");
    const int major = static_cast<unsigned char>(data[6]);
    if (major < 1 || major > 3) fail("format version ", major, " is not one of 1, 2 and 3");
    size_t at = major == 1 ? 10 : 12;
    if (data.size() < at) fail("truncated header");
    uint32_t hlen = 0;
    if (major == 1) {
        uint16_t h16 = 0;
        std::memcpy(&h16, data.data() + 8, 2);
        hlen = h16;
    } else {
        std::memcpy(&hlen, data.data() + 8, 4);
    }
    if (hlen > data.size() - at) fail("truncated header (it declares ", hlen, " bytes)");
    const std::string_view h = data.substr(at, hlen);
    at += hlen;
    auto field = [&](std::string_view key) {
        const size_t p = h.find(key);
        const size_t colon = p == std::string_view::npos ? p : h.find(':', p);
        if (colon == std::string_view::npos) fail("the header has no ", key);
        return h.substr(colon + 1);
    };
    std::string_view d = field("'descr'");
    const size_t q0 = d.find('\''), q1 = q0 == std::string_view::npos ? q0 : d.find('\'', q0 + 1);
    if (q1 == std::string_view::npos) fail("the header's descr is not a quoted string");
    const Type dtype = detail::type_of_descr(std::string(d.substr(q0 + 1, q1 - q0 - 1)), where);
    const std::string_view fo = field("'fortran_order'");
    if (fo.substr(0, std::min(fo.find(','), fo.find('}'))).find("True") != std::string_view::npos)
        fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
    std::string_view sh = field("'shape'");
    const size_t open = sh.find('('), close = sh.find(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
        fail("the header's shape is not a tuple");
    sh = sh.substr(open + 1, close - open - 1);
    std::vector<int64_t> shape;
    int64_t elements = 1, spanned = 1;
    const int64_t available = static_cast<int64_t>((data.size() - at) / static_cast<size_t>(dtype.bytes()));
    for (size_t p = 0; p < sh.size();) {
        while (p < sh.size() && (sh[p] == ' ' || sh[p] == ',')) ++p;
        if (p == sh.size()) break;
        int64_t v = 0;
        size_t digits = 0;
        for (; p < sh.size() && sh[p] >= '0' && sh[p] <= '9'; ++p, ++digits) {
            if (v > (INT64_MAX - 9) / 10) fail("a dimension of the shape is too large");
            v = v * 10 + (sh[p] - '0');
        }
        if (digits == 0) fail("the shape holds '", std::string(sh.substr(p, 8)), "', not a size");
        if (shape.size() == 16) fail("the shape has more than 16 dimensions");
        shape.push_back(v);
        // Strides multiply the sizes too, so even beside a zero the product of the others must be sane.
        if (v != 0 && spanned > (int64_t{1} << 48) / v) fail("the shape is too large");
        spanned *= std::max<int64_t>(v, 1);
        if (v != 0 && elements > available / v)
            fail("the header declares more elements than the file holds (", data.size() - at, " bytes of data)");
        elements *= v;
    }
    if (elements > available) fail("the data is truncated");
    Buffer b(shape, dtype);
    std::memcpy(b.data(), data.data() + at, static_cast<size_t>(elements * dtype.bytes()));
    return b;
}

inline Buffer load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) kiln::detail::fail("npy '", path, "': cannot open the file");
    const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return load_from_bytes(data, path);
}

inline void save(const std::string& path, const Buffer& b) {
    if (!b.is_contiguous()) kiln::detail::fail("npy '", path, "': save a contiguous buffer");
    std::string shape = "(";
    for (size_t i = 0; i < b.ndim(); ++i)
        shape += std::to_string(b.dim(i)) + (b.ndim() == 1 ? "," : (i + 1 < b.ndim() ? ", " : ""));
    shape += ")";
    std::string h =
            "{'descr': '" + detail::descr_of(b.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::ofstream f(path, std::ios::binary);
    if (!f) kiln::detail::fail("npy '", path, "': cannot write the file");
    const uint16_t hl = static_cast<uint16_t>(h.size());
    f.write("\x93NUMPY\x01\x00", 8);
    f.write(reinterpret_cast<const char*>(&hl), 2);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    f.write(static_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size() * b.dtype().bytes()));
}

}  // namespace kiln::npy
