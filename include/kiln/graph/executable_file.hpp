#pragma once
// Saving a compiled model and loading it back, the last step of the TVM lesson's path: a program that
// compiles a model once (graph::compile) can start from the saved file later and skip import, passes,
// lowering and LLVM. The file holds the kernels' object code, the order of the kernel calls and their
// arguments, the memory plan and the constants (packed weights included). It runs only on the target it
// was compiled for; loading it elsewhere is an error that says so.
//
// Layout (little-endian): "KILNEXE\0", u32 version, the target string, then the values, the kernels,
// the steps, and a 64-bit checksum of everything before it, so a truncated or damaged file is reported
// before any of it is parsed or linked.
#include <fstream>
#include <string_view>

#include "kiln/graph/compile.hpp"

namespace kiln::graph {

namespace detail {

inline constexpr char exe_magic[8] = {'K', 'I', 'L', 'N', 'E', 'X', 'E', '\0'};
inline constexpr uint32_t exe_version = 1;

// FNV-1a over 8-byte words, then the tail bytes: the weights make files of tens of MiB, and a word at a
// time keeps checking them to milliseconds.
inline uint64_t checksum(const char* p, size_t n) {
    constexpr uint64_t prime = 1099511628211ull;
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = (h ^ w) * prime;
    }
    for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * prime;
    return h;
}

// How a value's memory is provided when the executable runs.
enum class ValueKind : uint8_t { Input, Output, Constant, Arena };

class ExeWriter {
public:
    template <typename T>
    void pod(T v) {
        static_assert(std::is_trivially_copyable_v<T>);
        out_.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void bytes(const void* p, size_t n) {
        pod<uint64_t>(n);
        out_.append(static_cast<const char*>(p), n);
    }
    void str(const std::string& s) { bytes(s.data(), s.size()); }
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
        pod<uint64_t>(checksum(out_.data(), out_.size()));
        return std::move(out_);
    }
    std::string& buffer() { return out_; }

private:
    std::string out_;
};

// Every read is bounds-checked: the file comes from disk and may be anything.
class ExeReader {
public:
    ExeReader(std::string_view data, std::string path) : d_(data), path_(std::move(path)) {}

    template <typename T>
    T pod(const char* what) {
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
    std::string str(const char* what) { return std::string(bytes(what)); }
    uint32_t count(const char* what, uint32_t limit) {
        const uint32_t n = pod<uint32_t>(what);
        if (n > limit) fail(what, " count ", n, " is more than ", limit);
        return n;
    }
    Type type(const char* what) {
        const auto code = pod<uint8_t>(what);
        const auto bits = pod<uint8_t>(what);
        const auto lanes = pod<uint16_t>(what);
        if (code > static_cast<uint8_t>(TypeCode::Handle) || lanes != 1 || !(bits == 1 || bits == 8 || bits == 16 || bits == 32 || bits == 64))
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

    template <typename... A>
    [[noreturn]] void fail(const A&... a) const {
        kiln::detail::fail("load_executable: '", path_, "' ", a..., "; save the executable again with graph::save");
    }

private:
    void need(uint64_t n, const char* what) const {
        if (n > d_.size() - at_) fail("ends in the middle of ", what, " (the file is truncated)");
    }
    std::string_view d_;
    size_t at_ = 0;
    std::string path_;
};

}  // namespace detail

// Writes `exe` to `path`. Fails if a kernel's object code was not kept (executables from
// graph::compile always keep it) or the file cannot be written.
inline void save(const Executable& exe, const std::string& path) {
    using detail::ValueKind;
    const Graph& g = exe.graph_;
    detail::ExeWriter w;
    w.buffer().append(detail::exe_magic, sizeof detail::exe_magic);
    w.pod<uint32_t>(detail::exe_version);

    std::vector<const Kernel::Compiled*> kernels;
    std::vector<uint32_t> kernel_of_step;
    for (auto& st : exe.steps_) {
        const Kernel::Compiled* c = &st.kernel.compiled();
        auto it = std::find(kernels.begin(), kernels.end(), c);
        kernel_of_step.push_back(static_cast<uint32_t>(it - kernels.begin()));
        if (it == kernels.end()) kernels.push_back(c);
    }
    w.str(kernels.empty() ? jit::resolve(Target{}).str() : kernels.front()->target);
    w.pod<int32_t>(exe.threads_);
    w.pod<uint64_t>(static_cast<uint64_t>(exe.arena_bytes_));

    // Values: every one a step reads or writes, plus the model's inputs and outputs.
    std::vector<int> ids;
    auto note = [&](int v) {
        if (std::find(ids.begin(), ids.end(), v) == ids.end()) ids.push_back(v);
    };
    for (int v : g.inputs) note(v);
    for (int v : g.outputs) note(v);
    for (auto& st : exe.steps_)
        for (int v : st.values) note(v);
    const char* arena = static_cast<const char*>(exe.arena_.get());
    w.pod<uint32_t>(static_cast<uint32_t>(ids.size()));
    for (int v : ids) {
        const Value& val = g.value(v);
        const Buffer& b = exe.storage_.at(v);
        const char* p = static_cast<const char*>(b.data());
        const bool in_arena = arena && p >= arena && p < arena + exe.arena_bytes_;
        const bool is_input = std::find(g.inputs.begin(), g.inputs.end(), v) != g.inputs.end();
        const ValueKind kind = in_arena ? ValueKind::Arena : val.is_constant() ? ValueKind::Constant : is_input ? ValueKind::Input : ValueKind::Output;
        w.pod<int32_t>(v);
        w.str(val.name);
        w.type(val.type.dtype);
        w.shape(val.type.shape);
        w.pod<uint8_t>(static_cast<uint8_t>(kind));
        if (kind == ValueKind::Arena) w.pod<uint64_t>(static_cast<uint64_t>(p - arena));
        if (kind == ValueKind::Constant) w.bytes(b.data(), static_cast<size_t>(b.size() * b.dtype().bytes()));
    }
    w.shape(std::vector<int64_t>(g.inputs.begin(), g.inputs.end()));
    w.shape(std::vector<int64_t>(g.outputs.begin(), g.outputs.end()));

    w.pod<uint32_t>(static_cast<uint32_t>(kernels.size()));
    for (auto* c : kernels) {
        if (c->object.empty())
            kiln::detail::fail("save: kernel '", c->symbol, "' was built without its object code; build it with BuildOptions::keep_object");
        if (!c->size_vars.empty()) kiln::detail::fail("save: kernel '", c->symbol, "' has symbolic sizes; only executables of fixed shapes can be saved");
        w.str(c->symbol);
        w.pod<uint32_t>(static_cast<uint32_t>(c->params.size()));
        for (auto& prm : c->params) {
            w.str(prm.name);
            w.type(prm.dtype);
            std::vector<int64_t> shape;
            for (auto& e : prm.shape) {
                auto d = as_const_int(e);
                if (!d) kiln::detail::fail("save: kernel '", c->symbol, "' parameter '", prm.name, "' has a symbolic shape");
                shape.push_back(*d);
            }
            w.shape(shape);
            w.pod<uint8_t>(prm.is_output ? 1 : 0);
        }
        w.str(c->object);
    }

    w.pod<uint32_t>(static_cast<uint32_t>(exe.steps_.size()));
    for (size_t k = 0; k < exe.steps_.size(); ++k) {
        const auto& st = exe.steps_[k];
        w.str(st.name);
        w.pod<uint32_t>(kernel_of_step[k]);
        w.pod<uint32_t>(static_cast<uint32_t>(st.values.size()));
        for (size_t i = 0; i < st.values.size(); ++i) {
            w.pod<int32_t>(st.values[i]);
            w.shape(st.args[i].shape);
        }
    }
    const std::string data = w.finish();
    std::ofstream f(path, std::ios::binary);
    if (!f) kiln::detail::fail("save: cannot open '", path, "' for writing");
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) kiln::detail::fail("save: writing '", path, "' failed");
}

// Loads an executable written by graph::save: links its kernels into the JIT (no compilation) and
// allocates its memory. `threads` > 0 replaces the thread count it was saved with. graph() of the
// result holds only its inputs, outputs and the values the kernels use; groups() is empty.
// The checksum catches damage, not intent: the file holds machine code, so load only files you saved.
inline Executable load_executable(const std::string& path, int threads = 0) {
    using detail::ValueKind;
    const auto t0 = std::chrono::steady_clock::now();
    std::string data;
    {
        std::ifstream f(path, std::ios::binary | std::ios::ate);
        if (!f) kiln::detail::fail("load_executable: cannot open '", path, "'");
        data.resize(static_cast<size_t>(f.tellg()));
        f.seekg(0);
        if (!f.read(data.data(), static_cast<std::streamsize>(data.size()))) kiln::detail::fail("load_executable: cannot read '", path, "'");
    }
    detail::ExeReader r(data, path);
    if (data.size() < sizeof detail::exe_magic || std::memcmp(data.data(), detail::exe_magic, sizeof detail::exe_magic) != 0)
        kiln::detail::fail("load_executable: '", path, "' is not a kiln executable (it does not start with KILNEXE); write one with graph::save");
    if (data.size() < sizeof detail::exe_magic + 4 + 8) r.fail("is truncated");
    uint64_t sum;
    std::memcpy(&sum, data.data() + data.size() - 8, 8);
    if (detail::checksum(data.data(), data.size() - 8) != sum) r.fail("is damaged or truncated (its checksum does not match)");
    detail::ExeReader in(std::string_view(data).substr(0, data.size() - 8), path);
    in.pod<uint64_t>("the header");
    const uint32_t version = in.pod<uint32_t>("the version");
    if (version != detail::exe_version) in.fail("has format version ", version, "; this kiln reads version ", detail::exe_version);
    const std::string target = in.str("the target");
    const std::string host = jit::resolve(Target{}).str();
    if (target != host)
        kiln::detail::fail("load_executable: '", path, "' was compiled for ", target, " but this machine is ", host,
                           "; compile the model on this machine (graph::compile) and save it here");

    Executable ex;
    ex.threads_ = in.pod<int32_t>("the thread count");
    if (threads > 0) ex.threads_ = threads;
    const uint64_t arena_bytes = in.pod<uint64_t>("the arena size");
    if (arena_bytes > (uint64_t{1} << 40)) in.fail("asks for an arena of ", arena_bytes, " bytes");
    ex.allocate_arena(static_cast<int64_t>(arena_bytes), "load_executable");
    void* arena = ex.arena_.get();

    std::unordered_map<int32_t, int> new_id;  // saved id -> id in ex.graph_
    const uint32_t nvalues = in.count("values", 1u << 24);
    for (uint32_t i = 0; i < nvalues; ++i) {
        const int32_t id = in.pod<int32_t>("a value id");
        std::string name = in.str("a value name");
        TensorType t;
        t.dtype = in.type("a value");
        t.shape = in.shape("a value");
        const auto kind = in.pod<uint8_t>("a value kind");
        if (new_id.count(id)) in.fail("lists value ", id, " twice");
        const int v = ex.graph_.add_value(name, t);
        new_id[id] = v;
        const size_t nbytes = static_cast<size_t>(t.numel() * t.dtype.bytes());
        switch (static_cast<ValueKind>(kind)) {
            case ValueKind::Arena: {
                const uint64_t offset = in.pod<uint64_t>("an arena offset");
                if (offset > arena_bytes || nbytes > arena_bytes - offset) in.fail("places value '", name, "' outside its arena");
                ex.storage_[v] = Buffer(static_cast<char*>(arena) + offset, t.shape, t.dtype);
                break;
            }
            case ValueKind::Constant: {
                const std::string_view bytes = in.bytes("a constant");
                if (bytes.size() != nbytes) in.fail("gives constant '", name, "' ", bytes.size(), " bytes; its type ", t.str(), " needs ", nbytes);
                Buffer b(t.shape, t.dtype);
                std::memcpy(b.data(), bytes.data(), nbytes);
                ex.graph_.values[v].data = b;
                ex.storage_[v] = b;
                break;
            }
            case ValueKind::Input:
            case ValueKind::Output: ex.storage_[v] = Buffer(t.shape, t.dtype); break;
            default: in.fail("has value '", name, "' of unknown kind ", int(kind));
        }
    }
    auto value_ids = [&](const char* what) {
        std::vector<int> out;
        for (int64_t id : in.shape(what)) {
            auto it = new_id.find(static_cast<int32_t>(id));
            if (it == new_id.end()) in.fail("names ", what, " value ", id, ", which it does not define");
            out.push_back(it->second);
        }
        return out;
    };
    ex.graph_.inputs = value_ids("an input");
    ex.graph_.outputs = value_ids("an output");

    std::vector<Kernel> kernels;
    const uint32_t nkernels = in.count("kernels", 1u << 16);
    for (uint32_t k = 0; k < nkernels; ++k) {
        auto c = std::make_shared<Kernel::Compiled>();
        c->symbol = in.str("a kernel name");
        c->target = target;
        const uint32_t nparams = in.count("kernel parameters", 4096);
        for (uint32_t i = 0; i < nparams; ++i) {
            Kernel::Param p;
            p.name = in.str("a parameter name");
            p.dtype = in.type("a parameter");
            for (int64_t d : in.shape("a parameter")) p.shape.push_back(make_int(i64, d));
            p.is_output = in.pod<uint8_t>("a parameter") != 0;
            c->params.push_back(std::move(p));
        }
        c->object = in.str("a kernel's object code");
        c->fn = reinterpret_cast<void (*)(void**, int64_t*)>(jit::JIT::instance().add_object(c->object, c->symbol));
        kernels.emplace_back(std::move(c));
    }

    const uint32_t nsteps = in.count("steps", 1u << 20);
    for (uint32_t k = 0; k < nsteps; ++k) {
        Executable::Step st;
        st.name = in.str("a step name");
        const uint32_t kernel = in.pod<uint32_t>("a step's kernel");
        if (kernel >= kernels.size()) in.fail("has step '", st.name, "' calling kernel ", kernel, " of ", kernels.size());
        st.kernel = kernels[kernel];
        const auto& params = st.kernel.compiled().params;
        const uint32_t nargs = in.count("step arguments", 4096);
        if (nargs != params.size()) in.fail("calls kernel '", st.kernel.compiled().symbol, "' with ", nargs, " arguments; it takes ", params.size());
        for (uint32_t i = 0; i < nargs; ++i) {
            const int32_t id = in.pod<int32_t>("a step argument");
            auto shape = in.shape("a step argument");
            auto it = new_id.find(id);
            if (it == new_id.end()) in.fail("has step '", st.name, "' reading value ", id, ", which it does not define");
            const Buffer& b = ex.storage_.at(it->second);
            int64_t n = 1;
            for (auto d : shape) n *= d;
            if (n != b.size() || b.dtype() != params[i].dtype) in.fail("has step '", st.name, "' whose argument ", i, " does not fit its value");
            st.args.push_back(detail::dense_arg(b.data(), b.dtype(), shape));
            st.values.push_back(it->second);
        }
        ex.steps_.push_back(std::move(st));
    }
    in.expect_end();
    ex.times_.kernels = static_cast<int>(ex.steps_.size());
    ex.times_.distinct_kernels = static_cast<int>(kernels.size());
    ex.times_.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ex.times_.llvm_ms = ex.times_.total_ms;
    return ex;
}

}  // namespace kiln::graph
