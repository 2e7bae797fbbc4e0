#pragma once
// The graph IR: a typed dataflow graph of operator nodes over tensor values, as an ONNX model or
// Relay's main function describes it. Values carry static shapes and element types (inferred when
// nodes are added), constants carry their data. Passes take a graph and return a new one.
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kiln/error.hpp"
#include "kiln/ir/type.hpp"
#include "kiln/runtime/buffer.hpp"

namespace kiln::graph {

struct TensorType {
    std::vector<int64_t> shape;
    Type dtype = f32;

    int64_t numel() const {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    size_t rank() const { return shape.size(); }
    bool operator==(const TensorType&) const = default;
    std::string str() const {
        std::string s = dtype.str() + "[";
        for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + "]";
    }
};

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                               std::vector<std::string>, Buffer>;

// A node's attributes by name. Getters name the node and the attribute when the value has the wrong kind.
class Attrs {
public:
    void set(const std::string& name, AttrValue v) { map_[name] = std::move(v); }
    bool has(const std::string& name) const { return map_.count(name) > 0; }
    void erase(const std::string& name) { map_.erase(name); }
    const std::map<std::string, AttrValue>& all() const { return map_; }

    int64_t get_int(const std::string& name, int64_t fallback) const {
        return has(name) ? get<int64_t>(name) : fallback;
    }
    double get_float(const std::string& name, double fallback) const {
        if (!has(name)) return fallback;
        if (auto* i = std::get_if<int64_t>(&map_.at(name))) return static_cast<double>(*i);
        return get<double>(name);
    }
    std::string get_string(const std::string& name, const std::string& fallback) const {
        return has(name) ? get<std::string>(name) : fallback;
    }
    std::vector<int64_t> get_ints(const std::string& name, std::vector<int64_t> fallback = {}) const {
        return has(name) ? get<std::vector<int64_t>>(name) : fallback;
    }
    std::vector<double> get_floats(const std::string& name, std::vector<double> fallback = {}) const {
        if (!has(name)) return fallback;
        if (auto* i = std::get_if<std::vector<int64_t>>(&map_.at(name)))
            return std::vector<double>(i->begin(), i->end());
        return get<std::vector<double>>(name);
    }

    template <typename T> const T& get(const std::string& name) const {
        auto it = map_.find(name);
        if (it == map_.end()) kiln::detail::fail("attribute '", name, "' is missing");
        if (auto* v = std::get_if<T>(&it->second)) return *v;
        kiln::detail::fail("attribute '", name, "' has the wrong kind (", kind_of(it->second), ")");
    }

    static const char* kind_of(const AttrValue& v) {
        static const char* names[] = {"int", "float", "string", "ints", "floats", "strings", "tensor"};
        return names[v.index()];
    }

    bool operator==(const Attrs& o) const;

private:
    std::map<std::string, AttrValue> map_;
};

struct Value {
    std::string name;
    TensorType type;
    int producer = -1;           // the node computing it; -1 for graph inputs and constants
    std::optional<Buffer> data;  // set for constants (initializers, folded results)
    // Non-empty when the value is stored blocked, e.g. "NCHW16c": the shape is then the physical shape.
    std::string layout;

    bool is_constant() const { return data.has_value(); }
};

struct Node {
    std::string name;
    std::string op;
    std::vector<int> inputs;   // value ids; -1 for an optional input left out
    std::vector<int> outputs;  // value ids
    Attrs attrs;

    const std::string& label() const { return name.empty() ? op : name; }
};

// Nodes are kept in topological order: every node comes after the producers of its inputs.
class Graph {
public:
    std::vector<Value> values;
    std::vector<Node> nodes;
    std::vector<int> inputs, outputs;
    int opset = 17;

    int add_value(std::string name, TensorType type) {
        values.push_back(Value{std::move(name), std::move(type), -1, std::nullopt, ""});
        return static_cast<int>(values.size()) - 1;
    }
    int add_input(std::string name, TensorType type) {
        int v = add_value(std::move(name), std::move(type));
        inputs.push_back(v);
        return v;
    }
    int add_constant(std::string name, Buffer data) {
        TensorType t{data.shape(), data.dtype()};
        int v = add_value(std::move(name), std::move(t));
        values[v].data = std::move(data);
        return v;
    }
    // Appends a node whose outputs are new values with the given types.
    int add_node(Node n, const std::vector<TensorType>& output_types,
                 const std::vector<std::string>& output_names = {}) {
        const int id = static_cast<int>(nodes.size());
        n.outputs.clear();
        for (size_t i = 0; i < output_types.size(); ++i) {
            std::string nm = i < output_names.size() && !output_names[i].empty() ? output_names[i]
                                                                                 : n.label() + ":" + std::to_string(i);
            int v = add_value(std::move(nm), output_types[i]);
            values[v].producer = id;
            n.outputs.push_back(v);
        }
        nodes.push_back(std::move(n));
        return id;
    }

    const Value& value(int id) const { return values.at(static_cast<size_t>(id)); }
    const TensorType& type_of(int id) const { return value(id).type; }
    int find_value(const std::string& name) const {
        for (size_t i = 0; i < values.size(); ++i)
            if (values[i].name == name) return static_cast<int>(i);
        return -1;
    }
    // How many node inputs and graph outputs read each value.
    std::vector<int> use_counts() const {
        std::vector<int> n(values.size(), 0);
        for (auto& nd : nodes)
            for (int v : nd.inputs)
                if (v >= 0) ++n[v];
        for (int v : outputs) ++n[v];
        return n;
    }
    // The constant data behind an input of a node, or null.
    const Buffer* constant_input(const Node& n, size_t i) const {
        if (i >= n.inputs.size() || n.inputs[i] < 0) return nullptr;
        auto& v = values[n.inputs[i]];
        return v.data ? &*v.data : nullptr;
    }
};

// The op -> counts table TVM's count_ops prints; handy in tests and in --dump.
inline std::map<std::string, int> count_ops(const Graph& g) {
    std::map<std::string, int> m;
    for (auto& n : g.nodes) ++m[n.op];
    return m;
}

namespace detail {
inline bool buffers_equal(const Buffer& a, const Buffer& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    if (a.data() == b.data()) return true;
    return std::memcmp(a.data(), b.data(), static_cast<size_t>(a.size() * a.dtype().bytes())) == 0;
}
}  // namespace detail

inline bool Attrs::operator==(const Attrs& o) const {
    if (map_.size() != o.map_.size()) return false;
    for (auto& [k, v] : map_) {
        auto it = o.map_.find(k);
        if (it == o.map_.end() || it->second.index() != v.index()) return false;
        const bool same = std::visit(
                [&](const auto& a) {
                    using T = std::decay_t<decltype(a)>;
                    const T& b = std::get<T>(it->second);
                    if constexpr (std::is_same_v<T, Buffer>)
                        return detail::buffers_equal(a, b);
                    else
                        return a == b;
                },
                v);
        if (!same) return false;
    }
    return true;
}

}  // namespace kiln::graph
