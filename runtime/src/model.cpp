// The runtime behind kiln/runtime.h: opens an exported model with dlopen, checks it (the model file's
// checksum and structure, the ABI version, the CPU features its kernels need), binds the kernels' calls
// into the runtime (thread pool, workspace), lays out its memory and runs its steps. It shares the
// model file reader, thread pool and workspace with the compiler's side (include/kiln/runtime/), and
// includes no LLVM and no protobuf.
#include "kiln/runtime.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kiln/runtime/model_abi.hpp"
#include "kiln/runtime/model_file.hpp"
#include "kiln/runtime/thread_pool.hpp"
#include "kiln/runtime/workspace.hpp"
#include "kiln/version.hpp"

namespace {

using kiln::runtime::ModelFile;
using kiln::runtime::ValueKind;
namespace abi = kiln::runtime::model_abi;

thread_local std::string last_error;

struct AlignedFree {
    void operator()(void* p) const { std::free(p); }
};
using AlignedBlock = std::unique_ptr<void, AlignedFree>;

// Inputs start zeroed (documented: an input never set is zero); the arena is written before it is read,
// so it is left to fault in during the first run rather than at load.
AlignedBlock allocate(size_t bytes, bool zeroed, const std::string& what, const std::string& path) {
    const size_t size = std::max<size_t>((bytes + 63) / 64 * 64, 64);
    void* p = std::aligned_alloc(64, size);
    if (!p)
        kiln::detail::fail("kiln_model_load: '", path, "' needs ", bytes, " bytes for ", what,
                           ", which could not be allocated");
    if (zeroed) std::memset(p, 0, size);
    return AlignedBlock(p);
}

// The CPU features a kernel may have been compiled for that this runtime can test, by LLVM's names.
// __builtin_cpu_supports takes only literals, hence the table.
struct Feature {
    const char* name;
    bool (*present)();
};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KILN_FEATURE(n)                                  \
    {                                                    \
        n, [] { return __builtin_cpu_supports(n) != 0; } \
    }
constexpr Feature features[] = {
        KILN_FEATURE("sse3"),         KILN_FEATURE("ssse3"),
        KILN_FEATURE("sse4.1"),       KILN_FEATURE("sse4.2"),
        KILN_FEATURE("popcnt"),       KILN_FEATURE("avx"),
        KILN_FEATURE("avx2"),         KILN_FEATURE("fma"),
        KILN_FEATURE("bmi"),          KILN_FEATURE("bmi2"),
        KILN_FEATURE("avx512f"),      KILN_FEATURE("avx512bw"),
        KILN_FEATURE("avx512dq"),     KILN_FEATURE("avx512vl"),
        KILN_FEATURE("avx512cd"),     KILN_FEATURE("avx512vnni"),
        KILN_FEATURE("avx512bf16"),   KILN_FEATURE("avx512vbmi"),
        KILN_FEATURE("avx512vbmi2"),  KILN_FEATURE("avx512ifma"),
        KILN_FEATURE("avx512bitalg"), KILN_FEATURE("avx512vpopcntdq"),
        KILN_FEATURE("avx512fp16"),   KILN_FEATURE("avx512vp2intersect"),
        KILN_FEATURE("avxvnni"),      KILN_FEATURE("f16c"),
        KILN_FEATURE("gfni"),         KILN_FEATURE("vaes"),
        KILN_FEATURE("vpclmulqdq"),   KILN_FEATURE("amx-tile"),
        KILN_FEATURE("amx-int8"),     KILN_FEATURE("amx-bf16"),
};
#undef KILN_FEATURE
constexpr const char* host_arch = "x86_64";
#else
constexpr Feature features[] = {{"", nullptr}};
#if defined(__aarch64__)
constexpr const char* host_arch = "aarch64";
#else
constexpr const char* host_arch = "";
#endif
#endif

// Refuses a model whose kernels would meet an illegal instruction here.
void check_cpu(const std::string& target, const std::string& path) {
    const std::string triple = abi::target_field(target, "mtriple");
    const std::string arch = triple.substr(0, triple.find('-'));
    // C source (graph::export_c_source) names no triple: it was compiled for wherever it runs.
    if (*host_arch && !triple.empty() && arch != host_arch)
        kiln::detail::fail("kiln_model_load: '", path, "' was compiled for ", arch, " but this machine is ", host_arch,
                           "; export the model for this machine");
    const std::string attrs = abi::target_field(target, "mattr");
    std::string missing;
    for (size_t from = 0; from < attrs.size();) {
        size_t to = attrs.find(',', from);
        if (to == std::string::npos) to = attrs.size();
        const std::string f = attrs.substr(from, to - from);
        from = to + 1;
        if (f.size() < 2 || f[0] != '+') continue;
        for (const Feature& known : features)
            if (known.present && f.compare(1, std::string::npos, known.name) == 0 && !known.present())
                missing += (missing.empty() ? "" : ", ") + f.substr(1);
    }
    if (!missing.empty())
        kiln::detail::fail("kiln_model_load: '", path, "' was compiled for a CPU with ", missing,
                           ", which this CPU lacks (", abi::target_field(target, "mcpu"),
                           " code cannot run here); export the model on this machine or for its CPU");
}

void set_error(const std::string& message) { last_error = message; }

template <typename F> int guarded(F&& body) {
    try {
        body();
        last_error.clear();
        return 0;
    } catch (const std::exception& e) { set_error(e.what()); } catch (...) {
        set_error("kiln runtime: an unknown error");
    }
    return -1;
}

}  // namespace

struct kiln_model {
    std::string path;
    void* handle = nullptr;
    ModelFile file;
    AlignedBlock arena;
    std::vector<AlignedBlock> owned;      // inputs and outputs
    std::vector<void*> value_data;        // by index into file.values
    std::vector<size_t> inputs, outputs;  // indices into file.values
    std::vector<void (*)(void**, int64_t*)> steps;
    std::vector<std::vector<void*>> step_args;
    std::vector<std::string> dtype_names;  // by index into file.values
    int threads = 0;
    void (*omp_set_num_threads)(int) = nullptr;  // libraries of C source: OpenMP's thread count

    ~kiln_model() {
        if (handle) ::dlclose(handle);
    }

    void* symbol(const char* name) const {
        void* p = ::dlsym(handle, name);
        if (!p)
            kiln::detail::fail("kiln_model_load: '", path, "' has no symbol ", name,
                               "; it is not a model exported by kiln (export one with `kiln export` or "
                               "kiln::graph::export_library)");
        return p;
    }

    void load() {
        handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char* why = ::dlerror();
            kiln::detail::fail("kiln_model_load: cannot open '", path, "': ", why ? why : "unknown error",
                               "; pass the path of a library written by `kiln export`");
        }
        // A library of C source (graph::export_c_source) runs its parallel loops on OpenMP, whose worker
        // threads outlive any model: unloading libgomp under them would crash the process at its next
        // loop or at exit, so such a library stays loaded; its thread count follows kiln_model_set_threads.
        if (::dlsym(handle, "GOMP_parallel")) {
            ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
            omp_set_num_threads = reinterpret_cast<void (*)(int)>(::dlsym(handle, "omp_set_num_threads"));
        }
        const int32_t version = *static_cast<const int32_t*>(symbol(abi::abi_symbol));
        if (version != abi::version)
            kiln::detail::fail("kiln_model_load: '", path, "' was exported for runtime ABI ", version,
                               "; this runtime reads ABI ", abi::version,
                               "; export the model again with the kiln this runtime comes from");
        const char* data = static_cast<const char*>(symbol(abi::data_symbol));
        const int64_t size = *static_cast<const int64_t*>(symbol(abi::size_symbol));
        const kiln::runtime::ModelFileContext ctx{"kiln_model_load", path, "export the model again with `kiln export`"};
        file = kiln::runtime::read_model_file(std::string_view(data, static_cast<size_t>(size)), ctx,
                                              "export one with `kiln export`");
        if (file.has_objects)
            kiln::detail::fail(
                    "kiln_model_load: '", path,
                    "' holds a saved executable, not an exported library; export the model with `kiln export`");
        check_cpu(file.target, path);

        auto** slots = static_cast<void**>(symbol(abi::runtime_symbol));
        slots[abi::slot_parallel_for] = reinterpret_cast<void*>(&kiln::runtime::kiln_parallel_for);
        slots[abi::slot_alloc] = reinterpret_cast<void*>(&kiln::runtime::kiln_alloc);
        slots[abi::slot_free] = reinterpret_cast<void*>(&kiln::runtime::kiln_free);

        arena = allocate(file.arena_bytes, false, "its intermediates", path);
        value_data.resize(file.values.size());
        for (size_t i = 0; i < file.values.size(); ++i) {
            const auto& v = file.values[i];
            dtype_names.push_back(v.dtype.str());
            switch (v.kind) {
                case ValueKind::Arena: value_data[i] = static_cast<char*>(arena.get()) + v.arena_offset; break;
                case ValueKind::Constant: value_data[i] = const_cast<char*>(v.constant.data()); break;
                case ValueKind::Input:
                case ValueKind::Output:
                    owned.push_back(allocate(v.bytes(), true, "'" + v.name + "'", path));
                    value_data[i] = owned.back().get();
                    break;
            }
        }
        for (auto id : file.inputs) inputs.push_back(file.index_of(id));
        for (auto id : file.outputs) outputs.push_back(file.index_of(id));

        std::vector<void (*)(void**, int64_t*)> kernels;
        for (size_t k = 0; k < file.kernels.size(); ++k) {
            if (file.kernels[k].symbol != abi::kernel_symbol(k))
                kiln::detail::fail("kiln_model_load: '", path, "' names kernel ", k, " '", file.kernels[k].symbol,
                                   "'; export the model again with `kiln export`");
            kernels.push_back(reinterpret_cast<void (*)(void**, int64_t*)>(symbol(file.kernels[k].symbol.c_str())));
        }
        for (auto& st : file.steps) {
            steps.push_back(kernels[st.kernel]);
            std::vector<void*> args;
            for (auto id : st.values) args.push_back(value_data[file.index_of(id)]);
            step_args.push_back(std::move(args));
        }
        threads = file.threads;
    }

    size_t find_input(const char* who, const char* name) const {
        if (!name)
            kiln::detail::fail(who, ": the input name is NULL; pass one of the names kiln_model_input_name gives");
        std::string all;
        for (size_t i : inputs) {
            if (file.values[i].name == name) return i;
            all += (all.empty() ? "'" : ", '") + file.values[i].name + "'";
        }
        kiln::detail::fail(who, ": the model has no input '", name, "'; its inputs are ", all);
    }
};

namespace {

template <typename Model> Model& checked(Model* m, const char* who) {
    if (!m) kiln::detail::fail(who, ": the model is NULL; pass the kiln_model* that kiln_model_load returned");
    return *m;
}

size_t checked_index(const std::vector<size_t>& list, int index, const char* who, const char* what) {
    if (index < 0 || static_cast<size_t>(index) >= list.size())
        kiln::detail::fail(who, ": there is no ", what, " ", index, "; the model has ", list.size(), " (indices 0 to ",
                           list.size() - 1, ")");
    return list[static_cast<size_t>(index)];
}

// For the functions that return a pointer or a count: the body's value, or `failed` after setting the error.
template <typename T, typename F> T returning(T failed, F&& body) {
    T out = failed;
    if (guarded([&] { out = body(); }) != 0) return failed;
    return out;
}

}  // namespace

extern "C" {

kiln_model* kiln_model_load(const char* path, char* error, size_t error_len) {
    kiln_model* result = nullptr;
    const int rc = guarded([&] {
        if (!path)
            kiln::detail::fail(
                    "kiln_model_load: the path is NULL; pass the path of a library written by `kiln export`");
        auto m = std::make_unique<kiln_model>();
        m->path = path;
        m->load();
        result = m.release();
    });
    if (error && error_len > 0) {
        const std::string& msg = rc == 0 ? std::string() : last_error;
        const size_t n = std::min(msg.size(), error_len - 1);
        std::memcpy(error, msg.data(), n);
        error[n] = '\0';
    }
    return result;
}

void kiln_model_free(kiln_model* model) { delete model; }

int kiln_model_num_inputs(const kiln_model* model) {
    return returning(-1, [&] { return static_cast<int>(checked(model, "kiln_model_num_inputs").inputs.size()); });
}

int kiln_model_num_outputs(const kiln_model* model) {
    return returning(-1, [&] { return static_cast<int>(checked(model, "kiln_model_num_outputs").outputs.size()); });
}

const char* kiln_model_input_name(const kiln_model* model, int index) {
    return returning<const char*>(nullptr, [&] {
        const auto& m = checked(model, "kiln_model_input_name");
        return m.file.values[checked_index(m.inputs, index, "kiln_model_input_name", "input")].name.c_str();
    });
}

const char* kiln_model_output_name(const kiln_model* model, int index) {
    return returning<const char*>(nullptr, [&] {
        const auto& m = checked(model, "kiln_model_output_name");
        return m.file.values[checked_index(m.outputs, index, "kiln_model_output_name", "output")].name.c_str();
    });
}

namespace {
const int64_t* shape_of(const kiln_model* model, bool input, int index, int* ndim) {
    const char* who = input ? "kiln_model_input_shape" : "kiln_model_output_shape";
    return returning<const int64_t*>(nullptr, [&] {
        const auto& m = checked(model, who);
        if (!ndim) kiln::detail::fail(who, ": ndim is NULL; pass an int* to receive the number of dimensions");
        const auto& v =
                m.file.values[checked_index(input ? m.inputs : m.outputs, index, who, input ? "input" : "output")];
        *ndim = static_cast<int>(v.shape.size());
        return v.shape.data();
    });
}
}  // namespace

const int64_t* kiln_model_input_shape(const kiln_model* model, int index, int* ndim) {
    return shape_of(model, true, index, ndim);
}
const int64_t* kiln_model_output_shape(const kiln_model* model, int index, int* ndim) {
    return shape_of(model, false, index, ndim);
}

const char* kiln_model_input_dtype(const kiln_model* model, int index) {
    return returning<const char*>(nullptr, [&] {
        const auto& m = checked(model, "kiln_model_input_dtype");
        return m.dtype_names[checked_index(m.inputs, index, "kiln_model_input_dtype", "input")].c_str();
    });
}

const char* kiln_model_output_dtype(const kiln_model* model, int index) {
    return returning<const char*>(nullptr, [&] {
        const auto& m = checked(model, "kiln_model_output_dtype");
        return m.dtype_names[checked_index(m.outputs, index, "kiln_model_output_dtype", "output")].c_str();
    });
}

int kiln_model_set_input(kiln_model* model, const char* name, const float* data, const int64_t* shape, int ndim) {
    return guarded([&] {
        const char* who = "kiln_model_set_input";
        auto& m = checked(model, who);
        const size_t i = m.find_input(who, name);
        const auto& v = m.file.values[i];
        if (v.dtype != kiln::f32)
            kiln::detail::fail(who, ": input '", v.name, "' holds ", v.dtype.str(),
                               ", not f32; pass its bytes with kiln_model_set_input_bytes");
        if (!data) kiln::detail::fail(who, ": the data of input '", v.name, "' is NULL; pass ", v.numel(), " floats");
        if (!shape && ndim != 0)
            kiln::detail::fail(who, ": the shape of input '", v.name, "' is NULL; pass its ", v.shape.size(),
                               " dimensions");
        auto show = [](const int64_t* s, size_t n) {
            std::string out = "[";
            for (size_t d = 0; d < n; ++d) out += (d ? ", " : "") + std::to_string(s[d]);
            return out + "]";
        };
        const bool same = ndim >= 0 && static_cast<size_t>(ndim) == v.shape.size() &&
                          std::equal(v.shape.begin(), v.shape.end(), shape);
        if (!same)
            kiln::detail::fail(
                    who, ": input '", v.name, "' has shape ", show(v.shape.data(), v.shape.size()),
                    " but the data passed has shape ",
                    ndim < 0 ? "of " + std::to_string(ndim) + " dimensions" : show(shape, static_cast<size_t>(ndim)),
                    "; pass data of the model's input shape");
        std::memcpy(m.value_data[i], data, v.bytes());
    });
}

int kiln_model_set_input_bytes(kiln_model* model, const char* name, const void* data, size_t bytes) {
    return guarded([&] {
        const char* who = "kiln_model_set_input_bytes";
        auto& m = checked(model, who);
        const size_t i = m.find_input(who, name);
        const auto& v = m.file.values[i];
        if (!data) kiln::detail::fail(who, ": the data of input '", v.name, "' is NULL; pass ", v.bytes(), " bytes");
        if (bytes != v.bytes())
            kiln::detail::fail(who, ": input '", v.name, "' (", v.dtype.str(), ", ", v.numel(), " elements) takes ",
                               v.bytes(), " bytes, not ", bytes);
        std::memcpy(m.value_data[i], data, bytes);
    });
}

namespace {
KILN_CALLS_GENERATED_CODE void run_steps(kiln_model& m) {
    for (size_t k = 0; k < m.steps.size(); ++k) {
        const auto& st = m.file.steps[k];
        for (const auto& c : st.checks) {
            const auto& v = m.file.values[m.file.index_of(st.values[c.arg])];
            const std::string bad =
                    kiln::runtime::index_out_of_range(c, m.step_args[k][c.arg], v.dtype, v.numel(), v.name);
            if (!bad.empty()) kiln::detail::fail("kiln_model_run: ", bad);
        }
        m.steps[k](m.step_args[k].data(), nullptr);
    }
}
}  // namespace

int kiln_model_run(kiln_model* model) {
    return guarded([&] {
        auto& m = checked(model, "kiln_model_run");
        if (m.threads > 0 && m.omp_set_num_threads)
            m.omp_set_num_threads(m.threads);
        else if (m.threads > 0 && kiln::num_threads() != m.threads)
            kiln::set_num_threads(m.threads);
        run_steps(m);
    });
}

int kiln_model_output(const kiln_model* model, int index, const float** data, const int64_t** shape, int* ndim) {
    return guarded([&] {
        const char* who = "kiln_model_output";
        const auto& m = checked(model, who);
        const size_t i = checked_index(m.outputs, index, who, "output");
        const auto& v = m.file.values[i];
        if (v.dtype != kiln::f32)
            kiln::detail::fail(who, ": output '", v.name, "' holds ", v.dtype.str(),
                               ", not f32; read its bytes with kiln_model_output_bytes");
        if (!data) kiln::detail::fail(who, ": data is NULL; pass a const float** to receive output '", v.name, "'");
        *data = static_cast<const float*>(m.value_data[i]);
        if (shape) *shape = v.shape.data();
        if (ndim) *ndim = static_cast<int>(v.shape.size());
    });
}

const void* kiln_model_output_bytes(const kiln_model* model, int index, size_t* bytes) {
    return returning<const void*>(nullptr, [&] {
        const auto& m = checked(model, "kiln_model_output_bytes");
        const size_t i = checked_index(m.outputs, index, "kiln_model_output_bytes", "output");
        if (bytes) *bytes = m.file.values[i].bytes();
        return static_cast<const void*>(m.value_data[i]);
    });
}

int kiln_model_set_threads(kiln_model* model, int threads) {
    return guarded([&] {
        auto& m = checked(model, "kiln_model_set_threads");
        if (threads < 0)
            kiln::detail::fail("kiln_model_set_threads: threads is ", threads,
                               "; use 0 (keep the pool as it is) or a positive count");
        m.threads = threads;
    });
}

const char* kiln_last_error(void) { return last_error.c_str(); }

const char* kiln_runtime_version(void) { return KILN_VERSION; }

}  // extern "C"
