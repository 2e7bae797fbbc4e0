#pragma once
// Reading and writing numpy .npy files (format 1.0-3.0, little-endian, C order) as kiln Buffers: how
// model inputs and outputs travel between kiln, numpy and ONNX Runtime.
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

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

inline Buffer load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) kiln::detail::fail("npy '", path, "': cannot open the file");
    char magic[8];
    if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        kiln::detail::fail("npy '", path, "': not a .npy file (bad magic)");
    uint32_t hlen = 0;
    if (magic[6] == 1) {
        uint16_t h16 = 0;
        f.read(reinterpret_cast<char*>(&h16), 2);
        hlen = h16;
    } else {
        f.read(reinterpret_cast<char*>(&hlen), 4);
    }
    if (!f || hlen > (1u << 20)) kiln::detail::fail("npy '", path, "': truncated header");
    std::string h(hlen, '\0');
    if (!f.read(h.data(), hlen)) kiln::detail::fail("npy '", path, "': truncated header");
    auto field = [&](const std::string& key) {
        auto p = h.find("'" + key + "'");
        if (p == std::string::npos) kiln::detail::fail("npy '", path, "': header has no '", key, "'");
        return h.substr(h.find(':', p) + 1);
    };
    std::string d = field("descr");
    d = d.substr(d.find('\'') + 1);
    d = d.substr(0, d.find('\''));
    if (field("fortran_order").find("True") < field("fortran_order").find(','))
        kiln::detail::fail("npy '", path,
                           "': Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
    std::string sh = field("shape");
    sh = sh.substr(sh.find('(') + 1, sh.find(')') - sh.find('(') - 1);
    std::vector<int64_t> shape;
    std::stringstream ss(sh);
    for (std::string tok; std::getline(ss, tok, ',');)
        if (tok.find_first_not_of(" ") != std::string::npos) shape.push_back(std::stoll(tok));
    Buffer b(shape, detail::type_of_descr(d, path));
    const auto bytes = static_cast<std::streamsize>(b.size() * b.dtype().bytes());
    if (!f.read(static_cast<char*>(b.data()), bytes)) kiln::detail::fail("npy '", path, "': the data is truncated");
    return b;
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
