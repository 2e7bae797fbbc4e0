#pragma once
// The description of a compiled model that runs without a compiler: its values (inputs, outputs,
// constants, and the arena offsets of everything else), its kernels with their parameters, and the
// steps that call them. graph::save writes it with the kernels' object code (the JIT links them when
// the file is loaded); graph::export_library writes it without, into a shared library whose kernels
// the runtime (runtime/, kiln/runtime.h) finds with dlsym. One format, one reader, checked once.
//
// Layout (little-endian): "KILNEXE\0", u32 version, u8 flags, the target string, the thread count,
// the arena size, then the values, the kernels and the steps, and a 64-bit hash of everything before
// it, so a truncated or damaged file is reported before any of it is parsed, linked or run. Constants
// start on 64-byte boundaries of the file, so a runtime that maps it uses them where they lie.
//
// This header includes no LLVM and no IR: the deployable runtime is built from it.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kiln/ir/type.hpp"
#include "kiln/runtime/hash.hpp"

namespace kiln::runtime {

// How a value's memory is provided when the model runs.
enum class ValueKind : uint8_t { Input, Output, Constant, Arena };

struct ModelFile {
    struct Value {
        int32_t id = 0;
        std::string name;
        Type dtype;
        std::vector<int64_t> shape;
        ValueKind kind = ValueKind::Arena;
        uint64_t arena_offset = 0;  // Arena values
        std::string_view constant;  // Constant values: their bytes, where the file (or the caller) holds them
        int64_t numel() const {
            int64_t n = 1;
            for (auto d : shape) n *= d;
            return n;
        }
        size_t bytes() const { return static_cast<size_t>(numel()) * static_cast<size_t>(dtype.bytes()); }
    };
    struct Param {
        std::string name;
        Type dtype;
        std::vector<int64_t> shape;
        bool is_output = false;
    };
    struct Kernel {
        std::string symbol;
        std::vector<Param> params;
        std::string_view object;  // empty when the file comes without object code
    };
    // Integer indices a step's kernel reads data at (ONNX Gather's), which must lie in [-size, size) before
    // it runs: the kernel itself clamps them, so only this check turns a wrong index into an error.
    struct IndexCheck {
        uint32_t arg = 0;  // the step argument holding the indices (i32 or i64)
        int64_t size = 0;  // the extent of the axis they index
        std::string node;  // the model node, as messages name it: node 'g' (Gather)
    };
    struct Step {
        std::string name;
        uint32_t kernel = 0;
        std::vector<int32_t> values;               // the value id of each argument
        std::vector<std::vector<int64_t>> shapes;  // each argument's shape as the kernel sees it
        std::vector<IndexCheck> checks;
    };

    std::string target;  // Target::str() of what the kernels were compiled for
    int32_t threads = 0;
    uint64_t arena_bytes = 0;
    bool has_objects = false;
    std::vector<Value> values;
    std::vector<int32_t> inputs, outputs;
    std::vector<Kernel> kernels;
    std::vector<Step> steps;

    // The index in `values` of the value with this id (read_model_file has checked that it exists).
    size_t index_of(int32_t id) const {
        for (size_t i = 0; i < values.size(); ++i)
            if (values[i].id == id) return i;
        return values.size();
    }
};

// Who reads a file, for error messages: "<who>: '<path>' <what went wrong>; <remedy>".
struct ModelFileContext {
    std::string who;  // load_executable, kiln_model_load
    std::string path;
    std::string remedy;  // what to do about a damaged or foreign file
};

namespace detail {

inline constexpr char model_magic[8] = {'K', 'I', 'L', 'N', 'E', 'X', 'E', '\0'};
inline constexpr uint32_t model_version = 3;
inline constexpr size_t constant_alignment = 64;

class ModelWriter {
public:
    template <typename T> void pod(T v) {
        static_assert(std::is_trivially_copyable_v<T>);
        out_.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void bytes(std::string_view s) {
        pod<uint64_t>(s.size());
        out_.append(s);
    }
    // A length, zeros up to the next 64-byte boundary of the file, then the bytes.
    void aligned_bytes(std::string_view s) {
        pod<uint64_t>(s.size());
        out_.append((constant_alignment - out_.size() % constant_alignment) % constant_alignment, '\0');
        out_.append(s);
    }
    void type(Type t) {
        pod<uint8_t>(static_cast<uint8_t>(t.code));
        pod<uint8_t>(t.bits);
        pod<uint16_t>(t.lanes);
    }
    void shape(const std::vector<int64_t>& s) {
        pod<uint32_t>(static_cast<uint32_t>(s.size()));
        for (auto d : s) pod<int64_t>(d);
    }
    std::string finish() {
        pod<uint64_t>(hash64(out_));
        return std::move(out_);
    }
    std::string& buffer() { return out_; }

private:
    std::string out_;
};

// Every read is bounds-checked: the file comes from disk and may be anything.
class ModelReader {
public:
    ModelReader(std::string_view data, const ModelFileContext& ctx) : d_(data), ctx_(ctx) {}

    template <typename T> T pod(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, d_.data() + at_, sizeof v);
        at_ += sizeof v;
        return v;
    }
    std::string_view bytes(const char* what) {
        const uint64_t n = pod<uint64_t>(what);
        need(n, what);
        std::string_view s = d_.substr(at_, n);
        at_ += n;
        return s;
    }
    std::string_view aligned_bytes(const char* what) {
        const uint64_t n = pod<uint64_t>(what);
        const size_t pad = (constant_alignment - at_ % constant_alignment) % constant_alignment;
        need(pad, what);
        at_ += pad;
        need(n, what);
        std::string_view s = d_.substr(at_, n);
        at_ += n;
        return s;
    }
    std::string str(const char* what) { return std::string(bytes(what)); }
    // A count of records, each at least 4 bytes: no more than the bytes left can hold, so a damaged count
    // is refused before anything of its size is allocated.
    uint32_t count(const char* what, uint32_t limit) {
        const uint32_t n = pod<uint32_t>(what);
        if (n > limit) fail(what, " count ", n, " is more than ", limit);
        if (n > (d_.size() - at_) / 4)
            fail(what, " count ", n, " is more than the ", d_.size() - at_, " bytes left hold (the file is truncated)");
        return n;
    }
    Type type(const char* what) {
        const auto code = pod<uint8_t>(what);
        const auto bits = pod<uint8_t>(what);
        const auto lanes = pod<uint16_t>(what);
        if (code > static_cast<uint8_t>(TypeCode::Handle) || lanes != 1 ||
            !(bits == 1 || bits == 8 || bits == 16 || bits == 32 || bits == 64))
            fail(what, " has an element type this version cannot read");
        return Type{static_cast<TypeCode>(code), bits, lanes};
    }
    std::vector<int64_t> shape(const char* what) {
        const uint32_t rank = count(what, 16);
        std::vector<int64_t> s(rank);
        int64_t n = 1;
        for (auto& d : s) {
            d = pod<int64_t>(what);
            if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) fail(what, " has an impossible shape");
            n *= d;
        }
        return s;
    }
    void expect_end() {
        if (at_ != d_.size()) fail("has ", d_.size() - at_, " unexpected bytes after its contents");
    }

    template <typename... A> [[noreturn]] void fail(const A&... a) const {
        kiln::detail::fail(ctx_.who, ": '", ctx_.path, "' ", a..., "; ", ctx_.remedy);
    }

private:
    void need(uint64_t n, const char* what) const {
        if (n > d_.size() - at_) fail("ends in the middle of ", what, " (the file is truncated)");
    }
    std::string_view d_;
    size_t at_ = 0;
    const ModelFileContext& ctx_;
};

}  // namespace detail

inline std::string write_model_file(const ModelFile& m) {
    detail::ModelWriter w;
    w.buffer().append(detail::model_magic, sizeof detail::model_magic);
    w.pod<uint32_t>(detail::model_version);
    w.pod<uint8_t>(m.has_objects ? 1 : 0);
    w.bytes(m.target);
    w.pod<int32_t>(m.threads);
    w.pod<uint64_t>(m.arena_bytes);
    w.pod<uint32_t>(static_cast<uint32_t>(m.values.size()));
    for (auto& v : m.values) {
        w.pod<int32_t>(v.id);
        w.bytes(v.name);
        w.type(v.dtype);
        w.shape(v.shape);
        w.pod<uint8_t>(static_cast<uint8_t>(v.kind));
        if (v.kind == ValueKind::Arena) w.pod<uint64_t>(v.arena_offset);
        if (v.kind == ValueKind::Constant) w.aligned_bytes(v.constant);
    }
    w.shape(std::vector<int64_t>(m.inputs.begin(), m.inputs.end()));
    w.shape(std::vector<int64_t>(m.outputs.begin(), m.outputs.end()));
    w.pod<uint32_t>(static_cast<uint32_t>(m.kernels.size()));
    for (auto& k : m.kernels) {
        w.bytes(k.symbol);
        w.pod<uint32_t>(static_cast<uint32_t>(k.params.size()));
        for (auto& p : k.params) {
            w.bytes(p.name);
            w.type(p.dtype);
            w.shape(p.shape);
            w.pod<uint8_t>(p.is_output ? 1 : 0);
        }
        if (m.has_objects) w.bytes(k.object);
    }
    w.pod<uint32_t>(static_cast<uint32_t>(m.steps.size()));
    for (auto& st : m.steps) {
        w.bytes(st.name);
        w.pod<uint32_t>(st.kernel);
        w.pod<uint32_t>(static_cast<uint32_t>(st.values.size()));
        for (size_t i = 0; i < st.values.size(); ++i) {
            w.pod<int32_t>(st.values[i]);
            w.shape(st.shapes[i]);
        }
        w.pod<uint32_t>(static_cast<uint32_t>(st.checks.size()));
        for (auto& c : st.checks) {
            w.pod<uint32_t>(c.arg);
            w.pod<int64_t>(c.size);
            w.bytes(c.node);
        }
    }
    return w.finish();
}

// The first index of `data` (n elements of i32 or i64) outside [-size, size), described for an error
// message naming the node and the value; empty when every one is in range.
inline std::string index_out_of_range(const ModelFile::IndexCheck& c, const void* data, Type dtype, int64_t n,
                                      const std::string& value) {
    for (int64_t i = 0; i < n; ++i) {
        const int64_t v = dtype == i64 ? static_cast<const int64_t*>(data)[i] : static_cast<const int32_t*>(data)[i];
        if (v < -c.size || v >= c.size)
            return c.node + ": index " + std::to_string(v) + " at position " + std::to_string(i) + " of '" + value +
                   "' is outside [-" + std::to_string(c.size) + ", " + std::to_string(c.size) +
                   "), the extent of the axis it indexes; pass indices inside it";
    }
    return "";
}

// Reads and checks a model file held in `data`, which must outlive the result (constants and objects
// are views into it). Everything a runner relies on is checked here: the hash, the version, that every
// id a step or the model's inputs and outputs name is defined, that arena values lie inside the arena,
// that every step passes its kernel as many arguments as it takes, each of the parameter's type and size.
// `magic_remedy` is what the message for a file that is no model at all tells the user to do.
inline ModelFile read_model_file(std::string_view data, const ModelFileContext& ctx, const std::string& magic_remedy) {
    detail::ModelReader r(data, ctx);
    if (data.size() < sizeof detail::model_magic ||
        std::memcmp(data.data(), detail::model_magic, sizeof detail::model_magic) != 0)
        kiln::detail::fail(ctx.who, ": '", ctx.path, "' is not a kiln executable (it does not start with KILNEXE); ",
                           magic_remedy);
    if (data.size() < sizeof detail::model_magic + 4 + 8) r.fail("is truncated");
    uint64_t sum;
    std::memcpy(&sum, data.data() + data.size() - 8, 8);
    if (hash64(data.substr(0, data.size() - 8)) != sum) r.fail("is damaged or truncated (its checksum does not match)");
    detail::ModelReader in(data.substr(0, data.size() - 8), ctx);
    in.pod<uint64_t>("the header");
    const uint32_t version = in.pod<uint32_t>("the version");
    if (version != detail::model_version)
        in.fail("has format version ", version, "; this kiln reads version ", detail::model_version);
    ModelFile m;
    m.has_objects = in.pod<uint8_t>("the flags") != 0;
    m.target = in.str("the target");
    m.threads = in.pod<int32_t>("the thread count");
    m.arena_bytes = in.pod<uint64_t>("the arena size");
    if (m.arena_bytes > (uint64_t{1} << 40)) in.fail("asks for an arena of ", m.arena_bytes, " bytes");

    std::unordered_map<int32_t, size_t> index;
    const uint32_t nvalues = in.count("values", 1u << 24);
    m.values.resize(nvalues);
    for (uint32_t i = 0; i < nvalues; ++i) {
        auto& v = m.values[i];
        v.id = in.pod<int32_t>("a value id");
        v.name = in.str("a value name");
        v.dtype = in.type("a value");
        v.shape = in.shape("a value");
        const auto kind = in.pod<uint8_t>("a value kind");
        if (!index.emplace(v.id, i).second) in.fail("lists value ", v.id, " twice");
        if (kind > static_cast<uint8_t>(ValueKind::Arena))
            in.fail("has value '", v.name, "' of unknown kind ", int(kind));
        v.kind = static_cast<ValueKind>(kind);
        if (v.kind == ValueKind::Arena) {
            v.arena_offset = in.pod<uint64_t>("an arena offset");
            if (v.arena_offset > m.arena_bytes || v.bytes() > m.arena_bytes - v.arena_offset)
                in.fail("places value '", v.name, "' outside its arena");
        }
        if (v.kind == ValueKind::Constant) {
            v.constant = in.aligned_bytes("a constant");
            if (v.constant.size() != v.bytes())
                in.fail("gives constant '", v.name, "' ", v.constant.size(), " bytes; its type ", v.dtype.str(),
                        " needs ", v.bytes());
        }
    }
    auto value_ids = [&](const char* what) {
        std::vector<int32_t> out;
        for (int64_t id : in.shape(what)) {
            if (!index.count(static_cast<int32_t>(id)))
                in.fail("names ", what, " value ", id, ", which it does not define");
            out.push_back(static_cast<int32_t>(id));
        }
        return out;
    };
    m.inputs = value_ids("an input");
    m.outputs = value_ids("an output");

    const uint32_t nkernels = in.count("kernels", 1u << 16);
    m.kernels.resize(nkernels);
    for (auto& k : m.kernels) {
        k.symbol = in.str("a kernel name");
        const uint32_t nparams = in.count("kernel parameters", 4096);
        k.params.resize(nparams);
        for (auto& p : k.params) {
            p.name = in.str("a parameter name");
            p.dtype = in.type("a parameter");
            p.shape = in.shape("a parameter");
            p.is_output = in.pod<uint8_t>("a parameter") != 0;
        }
        if (m.has_objects) k.object = in.bytes("a kernel's object code");
    }

    const uint32_t nsteps = in.count("steps", 1u << 20);
    m.steps.resize(nsteps);
    for (auto& st : m.steps) {
        st.name = in.str("a step name");
        st.kernel = in.pod<uint32_t>("a step's kernel");
        if (st.kernel >= m.kernels.size())
            in.fail("has step '", st.name, "' calling kernel ", st.kernel, " of ", m.kernels.size());
        const auto& k = m.kernels[st.kernel];
        const uint32_t nargs = in.count("step arguments", 4096);
        if (nargs != k.params.size())
            in.fail("calls kernel '", k.symbol, "' with ", nargs, " arguments; it takes ", k.params.size());
        for (uint32_t i = 0; i < nargs; ++i) {
            const int32_t id = in.pod<int32_t>("a step argument");
            auto shape = in.shape("a step argument");
            auto it = index.find(id);
            if (it == index.end()) in.fail("has step '", st.name, "' reading value ", id, ", which it does not define");
            const auto& v = m.values[it->second];
            int64_t n = 1, want = 1;
            for (auto d : shape) n *= d;
            for (auto d : k.params[i].shape) want *= d;
            if (n != v.numel() || n != want || v.dtype != k.params[i].dtype)
                in.fail("has step '", st.name, "' whose argument ", i, " does not fit its value");
            st.values.push_back(id);
            st.shapes.push_back(std::move(shape));
        }
        const uint32_t nchecks = in.count("index checks", 4096);
        for (uint32_t i = 0; i < nchecks; ++i) {
            ModelFile::IndexCheck c;
            c.arg = in.pod<uint32_t>("an index check");
            c.size = in.pod<int64_t>("an index check");
            c.node = in.str("an index check");
            if (c.arg >= st.values.size() || c.size <= 0 ||
                !(k.params[c.arg].dtype == i32 || k.params[c.arg].dtype == i64))
                in.fail("has step '", st.name, "' with an index check that does not fit its arguments");
            st.checks.push_back(std::move(c));
        }
    }
    in.expect_end();
    return m;
}

}  // namespace kiln::runtime
