#pragma once
// A graph's fingerprint: everything graph::compile reads from it (nodes, attributes, value types and
// layouts, inputs and outputs, the opset) as text, with every constant and tensor attribute reduced to
// its size and a 64-bit hash of its bytes. Two graphs with equal fingerprints compile to the same
// executable, which is what the disk cache's model entries (graph::compile) are keyed by. Hashing the
// constants costs 3 ms for ResNet-18's 45 MiB; the text is a few KiB per hundred nodes.
#include <cstdio>
#include <optional>
#include <sstream>

#include "kiln/graph/graph.hpp"
#include "kiln/runtime/hash.hpp"

namespace kiln::graph {

namespace detail {

// The bytes of a dense buffer as size and hash; nullopt for a strided view, which the caller then does
// not fingerprint at all rather than hash in some order of its own.
inline std::optional<std::string> fingerprint_bytes(const Buffer& b) {
    if (!b.is_contiguous()) return std::nullopt;
    const size_t n = static_cast<size_t>(b.size()) * static_cast<size_t>(b.dtype().bytes());
    char hash[24];
    std::snprintf(
            hash, sizeof hash, "%016llx",
            static_cast<unsigned long long>(runtime::hash64(std::string_view(static_cast<const char*>(b.data()), n))));
    return TensorType{b.shape(), b.dtype()}.str() + "#" + hash;
}

}  // namespace detail

// nullopt when the graph holds a strided constant (no stable bytes to hash).
inline std::optional<std::string> fingerprint(const Graph& g) {
    std::ostringstream os;
    os.precision(17);
    os << "opset " << g.opset << "\n";
    for (size_t i = 0; i < g.values.size(); ++i) {
        const Value& v = g.values[i];
        os << "v" << i << " '" << v.name << "' " << v.type.str() << " p" << v.producer << " l'" << v.layout << "'";
        if (v.data) {
            auto bytes = detail::fingerprint_bytes(*v.data);
            if (!bytes) return std::nullopt;
            os << " = " << *bytes;
        }
        os << "\n";
    }
    for (const Node& n : g.nodes) {
        os << "n '" << n.name << "' " << n.op << " (";
        for (int v : n.inputs) os << v << ",";
        os << ") -> (";
        for (int v : n.outputs) os << v << ",";
        os << ")";
        for (const auto& [name, value] : n.attrs.all()) {
            os << " " << name << ":" << Attrs::kind_of(value) << "=";
            bool ok = true;
            std::visit(
                    [&](const auto& x) {
                        using T = std::decay_t<decltype(x)>;
                        if constexpr (std::is_same_v<T, Buffer>) {
                            auto bytes = detail::fingerprint_bytes(x);
                            ok = bytes.has_value();
                            if (ok) os << *bytes;
                        } else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>) {
                            os << x;
                        } else if constexpr (std::is_same_v<T, std::string>) {
                            os << x.size() << "'" << x << "'";
                        } else {
                            os << "[";
                            for (const auto& e : x) {
                                if constexpr (std::is_same_v<std::decay_t<decltype(e)>, std::string>)
                                    os << e.size() << "'" << e << "',";
                                else
                                    os << e << ",";
                            }
                            os << "]";
                        }
                    },
                    value);
            if (!ok) return std::nullopt;
        }
        os << "\n";
    }
    os << "in";
    for (int v : g.inputs) os << " " << v;
    os << "\nout";
    for (int v : g.outputs) os << " " << v;
    os << "\n";
    return os.str();
}

}  // namespace kiln::graph
