#pragma once
// kiln::onnx::load: reads an ONNX model (protobuf, with the schema from libonnx) into a kiln graph.
// Initializers and Constant nodes become constants; shapes are static, so every dynamic dimension must
// be bound by the caller; nodes whose inputs are all constant (shape arithmetic) are evaluated while
// importing, as later nodes may need their values to know their own shapes. A file from a user may
// be anything: every problem is a kiln::Error naming the node, its op type and what is wrong.
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/config.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/target.hpp"

namespace kiln::onnx {

// What a model may declare before the importer refuses it, so that a damaged or hostile file cannot make
// kiln allocate, or work, without bound. Each refusal names the limit; raise it for a model that really
// needs more.
struct ImportLimits {
    int64_t max_tensor_elements = int64_t{1} << 31;  // of any input, initializer or node output
    int64_t max_total_elements = int64_t{1} << 33;   // of all of them together
    int max_rank = 8;
    int64_t max_nodes = int64_t{1} << 20;
    int64_t max_attribute_elements = int64_t{1} << 24;  // the list or tensor in one attribute
};

struct LoadOptions {
    // Shapes for inputs by name; required for inputs with symbolic dimensions, optional otherwise.
    std::map<std::string, std::vector<int64_t>> shapes{};
    // Inputs whose values are known when compiling (say the 'shape' input of a Reshape): they become constants.
    std::map<std::string, Buffer> constants{};
    Target target{};  // for evaluating constant nodes while importing
    // Evaluates a node whose inputs are all constant (shape arithmetic), whose value later nodes may need to
    // know their own shapes. Empty: kiln's own, which compiles the node as a kernel for `target`
    // (graph::detail::evaluate_node); the importer itself depends on no compiler.
    std::function<std::vector<Buffer>(const graph::Graph&, const graph::Node&, const Target&)> evaluate{};
    ImportLimits limits{};
};

// Reads the model in the file at `path`.
KILN_SEPARABLE graph::Graph load(const std::string& path, const LoadOptions& opt = {});

// Parses an in-memory model; `where` names it in messages.
KILN_SEPARABLE graph::Graph load_from_bytes(std::string_view bytes, const LoadOptions& opt = {},
                                            const std::string& where = "<memory>");

// One tensor stored as a serialized TensorProto (the .pb files of the ONNX test data sets).
KILN_SEPARABLE Buffer load_tensor(const std::string& path);

// With input shapes only: kiln::onnx::load("model.onnx", {{"input", {1, 3, 224, 224}}}). An initializer
// list rather than a map, which would make that call ambiguous with LoadOptions (write
// LoadOptions{.shapes = ...} for the other fields).
inline graph::Graph load(const std::string& path,
                         std::initializer_list<std::pair<const std::string, std::vector<int64_t>>> shapes) {
    LoadOptions o;
    o.shapes = shapes;
    return load(path, o);
}

}  // namespace kiln::onnx

#if defined(KILN_IMPLEMENTATION) || !defined(KILN_SEPARATE_IMPLEMENTATION)
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <onnx/onnx_pb.h>

#include "kiln/graph/compile.hpp"  // graph::detail::evaluate_node, the default evaluator
#include "kiln/graph/dtype.hpp"
#include "kiln/graph/lower_group.hpp"  // the operator registry, filled: infer_types while importing

namespace kiln::onnx {

namespace detail {

using graph::Attrs;
using graph::Graph;
using graph::Node;
using graph::TensorType;

template <typename... Parts> [[noreturn]] void fail_model(const std::string& where, const Parts&... parts) {
    kiln::detail::fail("ONNX model '", where, "': ", parts...);
}

// Holds every tensor the model declares to LoadOptions::limits, before anything of its size is allocated.
class LimitCheck {
public:
    LimitCheck(const ImportLimits& l, const std::string& where) : l_(l), where_(where) {}

    void tensor(const std::string& who, const std::vector<int64_t>& shape) {
        if (static_cast<int64_t>(shape.size()) > l_.max_rank)
            over(who + " has rank " + std::to_string(shape.size()), l_.max_rank, "max_rank");
        int64_t n = 1;
        for (auto d : shape) {
            if (d < 0) kiln::detail::fail(who, " has a negative dimension ", d);
            if (d > 0 && n > l_.max_tensor_elements / d)
                over(who + " would hold more than " + std::to_string(l_.max_tensor_elements) + " elements (shape " +
                             graph::detail::shape_str(shape) + ")",
                     l_.max_tensor_elements, "max_tensor_elements");
            n *= d;
        }
        total_ += n;
        if (total_ > l_.max_total_elements)
            over(who + " brings the model's tensors to " + std::to_string(total_) + " elements in all",
                 l_.max_total_elements, "max_total_elements");
    }
    void nodes(int64_t n) const {
        if (n > l_.max_nodes)
            over("ONNX model '" + where_ + "' has " + std::to_string(n) + " nodes", l_.max_nodes, "max_nodes");
    }
    void attribute(const std::string& who, const std::string& name, int64_t n) const {
        if (n > l_.max_attribute_elements)
            over(who + ": attribute '" + name + "' has " + std::to_string(n) + " elements", l_.max_attribute_elements,
                 "max_attribute_elements");
    }

private:
    [[noreturn]] static void over(const std::string& what, int64_t limit, const char* field) {
        kiln::detail::fail(what, ", over the limit of ", limit, " (kiln::onnx::LoadOptions::limits.", field,
                           "); raise the limit if the model really needs it");
    }
    const ImportLimits& l_;
    std::string where_;
    int64_t total_ = 0;
};

// A TensorProto's data as a kiln Buffer (raw_data or the typed repeated fields).
inline Buffer tensor_to_buffer(const ::onnx::TensorProto& t, const std::string& who);

// The same, taking raw_data over rather than copying it: the bytes protobuf parsed into a string of their
// own become the buffer's memory, which saves a copy of every weight (and faulting in its pages) at import.
inline Buffer take_tensor(::onnx::TensorProto& t, const std::string& who) {
    if (!t.has_raw_data() || t.external_data_size() > 0 ||
        t.data_location() == ::onnx::TensorProto_DataLocation_EXTERNAL)
        return tensor_to_buffer(t, who);
    const Type dt = graph::dtype_from_onnx(t.data_type(), who + ": tensor '" + t.name() + "'");
    if (reinterpret_cast<uintptr_t>(t.raw_data().data()) % static_cast<uintptr_t>(std::max(1, dt.bytes())) != 0)
        return tensor_to_buffer(t, who);
    // Anything unusual (a negative or huge dimension, a size that does not match) goes the checked way,
    // which refuses it with its message.
    std::vector<int64_t> shape(t.dims().begin(), t.dims().end());
    int64_t n = 1;
    for (auto d : shape) {
        if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) return tensor_to_buffer(t, who);
        n *= d;
    }
    if (t.raw_data().size() != static_cast<size_t>(n * dt.bytes()) || n == 0) return tensor_to_buffer(t, who);
    auto bytes = std::make_shared<std::string>(std::move(*t.mutable_raw_data()));
    void* data = bytes->data();
    return Buffer(std::shared_ptr<void>(bytes, data), data, shape, dt);
}

inline Buffer tensor_to_buffer(const ::onnx::TensorProto& t, const std::string& who) {
    if (t.data_location() == ::onnx::TensorProto_DataLocation_EXTERNAL || t.external_data_size() > 0)
        kiln::detail::fail(who, ": tensor '", t.name(),
                           "' keeps its data in an external file; save the model with its weights inside");
    const Type dt = graph::dtype_from_onnx(t.data_type(), who + ": tensor '" + t.name() + "'");
    std::vector<int64_t> shape(t.dims().begin(), t.dims().end());
    int64_t n = 1;
    for (auto d : shape) {
        if (d < 0) kiln::detail::fail(who, ": tensor '", t.name(), "' has a negative dimension ", d);
        if (d > 0 && n > (int64_t{1} << 40) / d) kiln::detail::fail(who, ": tensor '", t.name(), "' is too large");
        n *= d;
    }
    // An empty tensor is allowed here (an empty 'axes' list means something); a node that would compute an
    // empty result is rejected by shape inference.
    const size_t bytes = static_cast<size_t>(n * dt.bytes());
    auto count_error = [&](int64_t have) {
        kiln::detail::fail(who, ": tensor '", t.name(), "' declares ", n, " elements of shape ",
                           graph::detail::shape_str(shape), " but holds ", have, "; the file is corrupt or truncated");
    };
    // The count is checked before anything is allocated: the dimensions alone are only a claim.
    if (t.has_raw_data()) {
        if (t.raw_data().size() != bytes)
            count_error(static_cast<int64_t>(t.raw_data().size() / std::max(1, dt.bytes())));
        Buffer b = Buffer::uninitialized(shape, dt);
        std::memcpy(b.data(), t.raw_data().data(), bytes);
        return b;
    }
    const int64_t have = dt == f32   ? t.float_data_size()
                         : dt == f64 ? t.double_data_size()
                         : dt == i64 ? t.int64_data_size()
                         : dt == u32 ? t.uint64_data_size()
                                     : t.int32_data_size();
    if (have != n) count_error(have);
    Buffer b = Buffer::uninitialized(shape, dt);  // every element is written below, or the tensor is refused
    auto copy = [&](const auto& field, auto convert) {
        for (int64_t i = 0; i < n; ++i) convert(i, field.Get(static_cast<int>(i)));
    };
    char* p = static_cast<char*>(b.data());
    if (dt == f32)
        copy(t.float_data(), [&](int64_t i, float v) { reinterpret_cast<float*>(p)[i] = v; });
    else if (dt == f64)
        copy(t.double_data(), [&](int64_t i, double v) { reinterpret_cast<double*>(p)[i] = v; });
    else if (dt == i64)
        copy(t.int64_data(), [&](int64_t i, int64_t v) { reinterpret_cast<int64_t*>(p)[i] = v; });
    else if (dt == u32)
        copy(t.uint64_data(),
             [&](int64_t i, uint64_t v) { reinterpret_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v); });
    else if (dt == i32)
        copy(t.int32_data(), [&](int64_t i, int32_t v) { reinterpret_cast<int32_t*>(p)[i] = v; });
    else if (dt == i16)
        copy(t.int32_data(), [&](int64_t i, int32_t v) { reinterpret_cast<int16_t*>(p)[i] = static_cast<int16_t>(v); });
    else if (dt == i8)
        copy(t.int32_data(), [&](int64_t i, int32_t v) { reinterpret_cast<int8_t*>(p)[i] = static_cast<int8_t>(v); });
    else if (dt == u8)
        copy(t.int32_data(), [&](int64_t i, int32_t v) { reinterpret_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); });
    else if (dt.is_bool())
        copy(t.int32_data(), [&](int64_t i, int32_t v) { reinterpret_cast<bool*>(p)[i] = v != 0; });
    else if (dt == f16)
        copy(t.int32_data(),
             [&](int64_t i, int32_t v) { reinterpret_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(v); });
    else
        kiln::detail::fail(who, ": tensor '", t.name(), "' has an element type kiln cannot read");
    return b;
}

inline Attrs convert_attrs(const ::onnx::NodeProto& n, const std::string& who, const LimitCheck& limits) {
    Attrs a;
    for (const auto& at : n.attribute()) {
        int64_t elements = std::max({at.ints_size(), at.floats_size(), at.strings_size()});
        if (at.has_t()) {
            int64_t n = 1;
            for (auto d : at.t().dims()) n = d <= 0 ? 0 : (n > (int64_t{1} << 40) / d ? int64_t{1} << 40 : n * d);
            elements = std::max(elements, n);
        }
        limits.attribute(who, at.name(), elements);
        if (!at.ref_attr_name().empty())
            kiln::detail::fail(who, ": attribute '", at.name(),
                               "' refers to a function attribute; functions are not supported");
        switch (at.type()) {
            case ::onnx::AttributeProto_AttributeType_INT: a.set(at.name(), static_cast<int64_t>(at.i())); break;
            case ::onnx::AttributeProto_AttributeType_FLOAT: a.set(at.name(), static_cast<double>(at.f())); break;
            case ::onnx::AttributeProto_AttributeType_STRING: a.set(at.name(), at.s()); break;
            case ::onnx::AttributeProto_AttributeType_INTS:
                a.set(at.name(), std::vector<int64_t>(at.ints().begin(), at.ints().end()));
                break;
            case ::onnx::AttributeProto_AttributeType_FLOATS:
                a.set(at.name(), std::vector<double>(at.floats().begin(), at.floats().end()));
                break;
            case ::onnx::AttributeProto_AttributeType_STRINGS:
                a.set(at.name(), std::vector<std::string>(at.strings().begin(), at.strings().end()));
                break;
            case ::onnx::AttributeProto_AttributeType_TENSOR: a.set(at.name(), tensor_to_buffer(at.t(), who)); break;
            default:
                kiln::detail::fail(
                        who, ": attribute '", at.name(), "' is of kind ",
                        ::onnx::AttributeProto_AttributeType_Name(at.type()),
                        ", which kiln does not support (subgraphs, sparse tensors and types are out of scope)");
        }
    }
    return a;
}

// The value of a Constant node.
inline Buffer constant_value(const Node& n) {
    const auto& a = n.attrs;
    if (a.all().size() != 1)
        graph::detail::fail_node(n, "must have exactly one of value, value_float, value_floats, value_int, value_ints");
    if (a.has("value")) return a.get<Buffer>("value");
    if (a.has("value_float")) {
        Buffer b({}, f32);
        *static_cast<float*>(b.data()) = static_cast<float>(a.get_float("value_float", 0));
        return b;
    }
    if (a.has("value_int")) {
        Buffer b({}, i64);
        *static_cast<int64_t*>(b.data()) = a.get_int("value_int", 0);
        return b;
    }
    if (a.has("value_floats")) {
        auto v = a.get_floats("value_floats");
        if (v.empty()) graph::detail::fail_node(n, "value_floats is empty");
        Buffer b({static_cast<int64_t>(v.size())}, f32);
        for (size_t i = 0; i < v.size(); ++i) static_cast<float*>(b.data())[i] = static_cast<float>(v[i]);
        return b;
    }
    if (a.has("value_ints")) {
        auto v = a.get_ints("value_ints");
        if (v.empty()) graph::detail::fail_node(n, "value_ints is empty");
        Buffer b({static_cast<int64_t>(v.size())}, i64);
        std::memcpy(b.data(), v.data(), v.size() * sizeof(int64_t));
        return b;
    }
    graph::detail::fail_node(n, "attribute '", a.all().begin()->first,
                             "' is not supported for Constant (sparse and string constants are not)");
}

// Nodes worth running while importing: small results that later shapes may depend on.
inline bool fold_at_import(const Graph& g, const Node& n) {
    if (n.op == "Shape") return true;  // static shapes make it a constant whatever its input holds
    if (n.inputs.empty()) return false;
    for (int v : n.inputs)
        if (v >= 0 && !g.value(v).is_constant()) return false;
    for (int v : n.outputs)
        if (g.type_of(v).numel() > (1 << 16)) return false;
    return true;
}

}  // namespace detail

KILN_SEPARABLE graph::Graph load_from_bytes(std::string_view bytes, const LoadOptions& opt, const std::string& where) {
    using namespace detail;
    if (bytes.empty()) fail_model(where, "the file is empty");
    ::onnx::ModelProto model;
    if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
        !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        fail_model(where, "is not a valid ONNX protobuf (the file is truncated, corrupt, or not an ONNX model)");
    if (!model.has_graph()) fail_model(where, "has no graph");
    int64_t opset = -1;
    for (const auto& o : model.opset_import())
        if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
    if (opset < 0) fail_model(where, "imports no version of the default operator set (ai.onnx)");
    // Opset 22 only widened type constraints (bfloat16) of operators kiln runs in f32.
    if (opset < 11 || opset > 22)
        fail_model(where, "uses opset ", opset,
                   "; kiln supports opsets 11 to 22 (convert it with onnx.version_converter)");
    const auto& gp = model.graph();
    LimitCheck limits(opt.limits, where);
    limits.nodes(gp.node_size());
    Graph g;
    g.opset = static_cast<int>(opset);
    std::map<std::string, int> value_of;
    for (auto& init : *model.mutable_graph()->mutable_initializer()) {
        if (init.name().empty()) fail_model(where, "has an initializer without a name");
        limits.tensor("ONNX model '" + where + "': initializer '" + init.name() + "'",
                      std::vector<int64_t>(init.dims().begin(), init.dims().end()));
        value_of[init.name()] = g.add_constant(init.name(), take_tensor(init, "ONNX model '" + where + "'"));
    }
    for (const auto& in : gp.input()) {
        if (value_of.count(in.name())) continue;  // an initializer listed as an input too (older exporters)
        const std::string who = "ONNX model '" + where + "': input '" + in.name() + "'";
        if (auto c = opt.constants.find(in.name()); c != opt.constants.end()) {
            value_of[in.name()] = g.add_constant(in.name(), c->second);
            continue;
        }
        if (!in.type().has_tensor_type())
            kiln::detail::fail(who, " is not a tensor (sequences and maps are not supported)");
        const auto& tt = in.type().tensor_type();
        TensorType t;
        t.dtype = graph::dtype_from_onnx(tt.elem_type(), who);
        auto bound = opt.shapes.find(in.name());
        if (bound != opt.shapes.end()) {
            t.shape = bound->second;
            if (tt.has_shape() && tt.shape().dim_size() != static_cast<int>(t.shape.size()))
                kiln::detail::fail(who, " has rank ", tt.shape().dim_size(), " but the shape given for it, ",
                                   graph::detail::shape_str(t.shape), ", has rank ", t.shape.size());
            for (int d = 0; tt.has_shape() && d < tt.shape().dim_size(); ++d)
                if (tt.shape().dim(d).has_dim_value() && tt.shape().dim(d).dim_value() != t.shape[d])
                    kiln::detail::fail(who, " has dimension ", d, " fixed at ", tt.shape().dim(d).dim_value(),
                                       " but the shape given for it says ", t.shape[d]);
        } else {
            if (!tt.has_shape()) kiln::detail::fail(who, " has no shape in the model; give one in LoadOptions::shapes");
            for (int d = 0; d < tt.shape().dim_size(); ++d) {
                const auto& dim = tt.shape().dim(d);
                if (dim.has_dim_value() && dim.dim_value() <= 0)
                    kiln::detail::fail(who, " has dimension ", d, " of size ", dim.dim_value(),
                                       "; every dimension must be at least 1");
                if (!dim.has_dim_value())
                    kiln::detail::fail(who, " has dimension ", d, " unbound (",
                                       dim.has_dim_param() ? "'" + dim.dim_param() + "'" : std::string("unknown"),
                                       "); kiln compiles static shapes, so give the input's shape, e.g. {{\"",
                                       in.name(), "\", {1, 3, 224, 224}}}");
                t.shape.push_back(dim.dim_value());
            }
        }
        for (auto d : t.shape)
            if (d <= 0) kiln::detail::fail(who, ": dimension ", d, " must be positive");
        limits.tensor(who, t.shape);
        value_of[in.name()] = g.add_input(in.name(), t);
    }
    for (const auto& [name, _] : opt.shapes)
        if (!value_of.count(name)) fail_model(where, "has no input '", name, "' (a shape was given for it)");
    for (int k = 0; k < gp.node_size(); ++k) {
        const auto& np = gp.node(k);
        Node n;
        n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(k) : np.name();
        n.op = np.op_type();
        const std::string who = graph::detail::who(n);
        if (!np.domain().empty() && np.domain() != "ai.onnx")
            kiln::detail::fail(who, ": operator domain '", np.domain(),
                               "' is not supported; kiln implements the default ONNX domain");
        if (n.op.rfind("kiln.", 0) == 0)
            kiln::detail::fail(who, ": '", n.op,
                               "' is one of kiln's internal operators, which its passes insert; a model cannot use it");
        n.attrs = convert_attrs(np, who, limits);
        for (const auto& in : np.input()) {
            if (in.empty()) {
                n.inputs.push_back(-1);
                continue;
            }
            auto it = value_of.find(in);
            if (it == value_of.end())
                kiln::detail::fail(who, ": input '", in,
                                   "' is not a graph input, an initializer or the output of an earlier node (nodes "
                                   "must be in topological order)");
            n.inputs.push_back(it->second);
        }
        if (n.op == "Constant") {
            if (np.output_size() != 1) kiln::detail::fail(who, ": Constant has one output");
            value_of[np.output(0)] = g.add_constant(np.output(0), constant_value(n));
            continue;
        }
        std::vector<std::string> names(np.output().begin(), np.output().end());
        while (!names.empty() && names.back().empty()) names.pop_back();  // trailing optional outputs left out
        if (names.empty()) kiln::detail::fail(who, ": the node has no outputs");
        n.outputs.assign(names.size(), 0);
        const auto types = graph::infer_types(g, n);
        for (size_t i = 0; i < types.size() && i < names.size(); ++i)
            limits.tensor(who + ": output '" + names[i] + "'", types[i].shape);
        if (types.size() < names.size())
            kiln::detail::fail(who, ": the node asks for ", names.size(), " outputs but ", n.op, " has ", types.size());
        const int id = g.add_node(
                n, std::vector<TensorType>(types.begin(), types.begin() + static_cast<long>(names.size())), names);
        const std::vector<int> outs = g.nodes[id].outputs;
        if (fold_at_import(g, g.nodes[id])) {
            const auto vals = opt.evaluate ? opt.evaluate(g, g.nodes[id], opt.target)
                                           : graph::detail::evaluate_node(g, g.nodes[id], opt.target);
            for (size_t i = 0; i < names.size(); ++i) {
                const int v = g.nodes[id].outputs[i];
                g.values[v].data = vals[i];
                g.values[v].producer = -1;
            }
            g.nodes.pop_back();
        }
        for (size_t i = 0; i < names.size(); ++i)
            if (!names[i].empty()) value_of[names[i]] = outs[i];
    }
    for (const auto& out : gp.output()) {
        auto it = value_of.find(out.name());
        if (it == value_of.end()) fail_model(where, "output '", out.name(), "' is not computed by any node");
        g.outputs.push_back(it->second);
    }
    if (g.outputs.empty()) fail_model(where, "has no outputs");
    return g;
}

KILN_SEPARABLE graph::Graph load(const std::string& path, const LoadOptions& opt) {
    // The file is mapped, with its pages populated in one call, and parsed where it lies: read into a
    // string, a 45 MiB model was copied once more and faulted into fresh memory page by page.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) kiln::detail::fail("ONNX model '", path, "': cannot open the file");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        kiln::detail::fail("ONNX model '", path, "': cannot read the file (it is not a regular file)");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        return load_from_bytes(std::string_view(), opt, path);
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) kiln::detail::fail("ONNX model '", path, "': cannot map the file into memory");
    std::unique_ptr<void, std::function<void(void*)>> unmap(map, [size](void* p) { ::munmap(p, size); });
    return load_from_bytes(std::string_view(static_cast<const char*>(map), size), opt, path);
}

KILN_SEPARABLE Buffer load_tensor(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) kiln::detail::fail("ONNX tensor '", path, "': cannot open the file");
    std::stringstream ss;
    ss << f.rdbuf();
    ::onnx::TensorProto t;
    if (!t.ParseFromString(ss.str())) kiln::detail::fail("ONNX tensor '", path, "': not a serialized TensorProto");
    return detail::tensor_to_buffer(t, "ONNX tensor '" + path + "'");
}

}  // namespace kiln::onnx
#endif  // the implementation
