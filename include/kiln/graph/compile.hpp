#pragma once
// graph::compile: runs the graph passes of an optimisation level, lowers every fused group to a kiln
// kernel (identical groups compile once; distinct ones compile on worker threads), plans the memory of
// the intermediates by liveness, and returns an Executable that runs the kernels in order.
// Its definitions include the backend (LLVM); see kiln/config.hpp for compiling them in one file only.
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "kiln/autotune/task.hpp"
#include "kiln/build.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/graph/group.hpp"
#include "kiln/runtime/model_file.hpp"
#include "kiln/runtime/thread_pool.hpp"

namespace kiln::graph {

struct CompileOptions {
    // 0: every node its own kernel; 1: + operator fusion; 2: + canonicalisation, common subexpressions,
    // BatchNorm and scale folding, constant folding; 3: + layout alteration (blocked convolutions with
    // weights packed at compile time).
    int opt_level = 3;
    int threads = 0;  // kernel threads; 0 keeps the pool's current size
    Target target{};
    // Called with (pass name, graph after it) for --dump. A compile with a dump set always runs the passes.
    std::function<void(const std::string&, const Graph&, const std::vector<Group>*)> dump{};
    // Keep the compiled executable whole in the disk cache (kiln/jit/disk_cache.hpp), keyed by the graph's
    // fingerprint (graph/fingerprint.hpp), the opt level, the target and this program's binary, and on a
    // later compile of the same graph link it instead: no passes, lowering or LLVM, a start in tens of
    // milliseconds. (Each kernel is cached on its own either way.) An executable from such an entry is
    // like one from load_executable: graph() holds only the values its kernels use, groups() is empty,
    // and it cannot be written as C source; hence it is asked for, not the default. `kiln run` and
    // `kiln bench` ask for it.
    bool cache_executable = false;
    // Tuning records (kiln/autotune, `kiln tune`): a kernel whose compute has records from this machine is
    // scheduled with its fastest configuration (measured with `threads`, or else with another count), the
    // others with the default schedule. Empty: the defaults everywhere.
    std::string records{};
};

struct CompileTimes {
    double passes_ms = 0, lower_ms = 0, llvm_ms = 0, total_ms = 0;
    int kernels = 0, distinct_kernels = 0;
    int disk_cache_hits = 0;       // distinct kernels linked from the disk cache instead of compiled
    bool from_disk_cache = false;  // the whole executable came from the disk cache: no pass, lowering or LLVM ran
    int tuned_kernels = 0;         // kernels scheduled from CompileOptions::records
    std::vector<std::string> damaged_records;  // lines of the records file that were skipped, and why
};

// A distinct kernel of a compiled model as a tuning task (kiln/autotune): its compute, with the model's
// constants as the values it is measured on, and a template whose knob "generated" picks between the
// default schedule and the space generated from the compute (graph::schedule_group).
struct ModelTask {
    autotune::Task task;
    int weight = 0;       // how many kernels of one inference compute it
    std::string skipped;  // why it cannot be tuned; empty when it can
};

namespace detail {

// A kernel argument over contiguous memory of the given shape.
inline kiln::detail::ArgValue dense_arg(void* data, Type dtype, const std::vector<int64_t>& shape) {
    return {data, dtype, true, shape, Buffer::row_major(shape), {}};
}

}  // namespace detail

class Executable;

// The graph after the passes of opt.opt_level (what compile lowers), each pass reported to opt.dump.
KILN_SEPARABLE Graph optimize(const Graph& input, const CompileOptions& opt);

// Optimises, fuses, lowers and builds `model`; see CompileOptions.
KILN_SEPARABLE Executable compile(const Graph& model, const CompileOptions& opt = {});

// The distinct kernels compile(model, opt) would build, as tuning tasks, in the order they first run.
// Kernels of equal computes (the same operators on the same shapes) are one task of greater weight.
KILN_SEPARABLE std::vector<ModelTask> tasks(const Graph& model, const CompileOptions& opt = {});

namespace detail {

// Runs one node as a kernel on its constant inputs.
KILN_SEPARABLE std::vector<Buffer> evaluate_node(const Graph& g, const Node& n, const Target& target);

// The evaluator of constant folding: runs each of `nodes` (indices into g.nodes) as a kernel on its constant
// inputs, their kernels compiled on every core, and returns each node's outputs.
KILN_SEPARABLE std::vector<std::vector<Buffer>> evaluate_nodes(const Graph& g, const std::vector<int>& nodes,
                                                               const Target& target);

}  // namespace detail

struct ProfileEntry {
    std::string name;
    double ms = 0;
    int calls = 0;
};

class Executable {
public:
    void set_input(const std::string& name, const Buffer& data) {
        for (size_t i = 0; i < graph_.inputs.size(); ++i)
            if (graph_.value(graph_.inputs[i]).name == name) return set_input(i, data);
        std::string all;
        for (int v : graph_.inputs) all += (all.empty() ? "" : ", ") + graph_.value(v).name;
        kiln::detail::fail("set_input: the model has no input '", name, "'; its inputs are ", all);
    }
    void set_input(size_t index, const Buffer& data) {
        if (index >= graph_.inputs.size())
            kiln::detail::fail("set_input: input ", index, " does not exist; the model has ", graph_.inputs.size());
        const Value& v = graph_.value(graph_.inputs[index]);
        if (data.dtype() != v.type.dtype || data.shape() != v.type.shape)
            kiln::detail::fail("set_input: input '", v.name, "' is ", v.type.str(), " but the buffer is ",
                               TensorType{data.shape(), data.dtype()}.str(),
                               "; pass a buffer of the model's input type");
        const Buffer& dst = storage_[graph_.inputs[index]];
        copy_into(data, dst);
    }
    void run() {
        if (threads_ > 0 && kiln::num_threads() != threads_) kiln::set_num_threads(threads_);
        for (size_t k = 0; k < steps_.size(); ++k) {
            auto& st = steps_[k];
            for (const auto& c : st.checks) {
                const auto& a = st.args[c.arg];
                const std::string bad =
                        runtime::index_out_of_range(c, a.data, a.dtype, graph_.type_of(st.values[c.arg]).numel(),
                                                    graph_.value(st.values[c.arg]).name);
                if (!bad.empty()) kiln::detail::fail("run: ", bad);
            }
            if (profile_) {
                auto t0 = std::chrono::steady_clock::now();
                st.kernel.call(st.args);
                profile_data_[k].ms +=
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
                profile_data_[k].calls++;
            } else {
                st.kernel.call(st.args);
            }
        }
    }
    size_t num_outputs() const { return graph_.outputs.size(); }
    // A view of output i, valid until the next run().
    Buffer output(size_t i) const {
        if (i >= graph_.outputs.size())
            kiln::detail::fail("output: the model has ", graph_.outputs.size(), " output(s); there is no output ", i);
        return storage_.at(graph_.outputs[i]);
    }
    const std::string& output_name(size_t i) const { return graph_.value(graph_.outputs.at(i)).name; }

    void enable_profile(bool on = true) {
        profile_ = on;
        profile_data_.assign(steps_.size(), {});
        for (size_t k = 0; k < steps_.size(); ++k) profile_data_[k].name = steps_[k].name;
    }
    const std::vector<ProfileEntry>& profile() const { return profile_data_; }
    std::string profile_table() const {
        std::ostringstream os;
        double total = 0;
        for (auto& p : profile_data_) total += p.calls ? p.ms / p.calls : 0;
        os << "kernel                                              ms/run     share\n";
        for (auto& p : profile_data_) {
            const double ms = p.calls ? p.ms / p.calls : 0;
            char line[256];
            std::snprintf(line, sizeof line, "%-48s %10.3f %8.1f%%\n", p.name.substr(0, 48).c_str(), ms,
                          total > 0 ? 100 * ms / total : 0.0);
            os << line;
        }
        char line[128];
        std::snprintf(line, sizeof line, "%-48s %10.3f\n", "total", total);
        os << line;
        return os.str();
    }

    const Graph& graph() const { return graph_; }
    const std::vector<Group>& groups() const { return groups_; }
    const CompileTimes& compile_times() const { return times_; }
    int64_t arena_bytes() const { return arena_bytes_; }
    size_t num_kernels() const { return steps_.size(); }
    // Step k's kernel and its name (the fused operators', as the profile prints it).
    const Kernel& kernel(size_t k) const { return steps_.at(k).kernel; }
    const std::string& kernel_name(size_t k) const { return steps_.at(k).name; }

    // Each kernel once, in the order the steps first call them (the order of describe()'s kernels).
    std::vector<const Kernel::Compiled*> distinct_kernels() const {
        std::vector<const Kernel::Compiled*> kernels;
        for (auto& st : steps_)
            if (std::find(kernels.begin(), kernels.end(), &st.kernel.compiled()) == kernels.end())
                kernels.push_back(&st.kernel.compiled());
        return kernels;
    }

    // What runs this model without a compiler: values, memory plan, kernels and steps (what graph::save
    // and graph::export_library write). Constants and object code are views into this executable.
    runtime::ModelFile describe(bool with_objects) const {
        using runtime::ValueKind;
        runtime::ModelFile m;
        m.has_objects = with_objects;
        m.threads = threads_;
        m.arena_bytes = static_cast<uint64_t>(arena_bytes_);
        const std::vector<const Kernel::Compiled*> kernels = distinct_kernels();
        for (auto& st : steps_) {
            runtime::ModelFile::Step step;
            step.name = st.name;
            step.kernel = static_cast<uint32_t>(std::find(kernels.begin(), kernels.end(), &st.kernel.compiled()) -
                                                kernels.begin());
            step.values.assign(st.values.begin(), st.values.end());
            for (auto& a : st.args) step.shapes.push_back(a.shape);
            step.checks = st.checks;
            m.steps.push_back(std::move(step));
        }
        m.target = kernels.empty() ? jit::resolve(Target{}).str() : kernels.front()->target;
        for (auto* c : kernels) {
            if (with_objects && c->object.empty())
                kiln::detail::fail("save: kernel '", c->symbol,
                                   "' was built without its object code; build it with BuildOptions::keep_object");
            if (!c->size_vars.empty())
                kiln::detail::fail("save: kernel '", c->symbol,
                                   "' has symbolic sizes; only executables of fixed shapes can be saved");
            runtime::ModelFile::Kernel k;
            k.symbol = c->symbol;
            if (with_objects) k.object = c->object;
            for (auto& prm : c->params) {
                runtime::ModelFile::Param p{prm.name, prm.dtype, {}, prm.is_output};
                for (auto& e : prm.shape) {
                    auto d = as_const_int(e);
                    if (!d)
                        kiln::detail::fail("save: kernel '", c->symbol, "' parameter '", prm.name,
                                           "' has a symbolic shape");
                    p.shape.push_back(*d);
                }
                k.params.push_back(std::move(p));
            }
            m.kernels.push_back(std::move(k));
        }
        // Values: every one a step reads or writes, plus the model's inputs and outputs.
        auto note = [&](int v) {
            for (auto& known : m.values)
                if (known.id == v) return;
            const Value& val = graph_.value(v);
            const Buffer& b = storage_.at(v);
            const char* p = static_cast<const char*>(b.data());
            const char* arena = static_cast<const char*>(arena_.get());
            const bool in_arena = arena && p >= arena && p < arena + arena_bytes_;
            const bool is_input = std::find(graph_.inputs.begin(), graph_.inputs.end(), v) != graph_.inputs.end();
            runtime::ModelFile::Value out;
            out.id = v;
            out.name = val.name;
            out.dtype = val.type.dtype;
            out.shape = val.type.shape;
            out.kind = in_arena            ? ValueKind::Arena
                       : val.is_constant() ? ValueKind::Constant
                       : is_input          ? ValueKind::Input
                                           : ValueKind::Output;
            if (out.kind == ValueKind::Arena) out.arena_offset = static_cast<uint64_t>(p - arena);
            if (out.kind == ValueKind::Constant) out.constant = std::string_view(p, out.bytes());
            m.values.push_back(std::move(out));
        };
        for (int v : graph_.inputs) note(v);
        for (int v : graph_.outputs) note(v);
        for (auto& st : steps_)
            for (int v : st.values) note(v);
        m.inputs.assign(graph_.inputs.begin(), graph_.inputs.end());
        m.outputs.assign(graph_.outputs.begin(), graph_.outputs.end());
        return m;
    }

private:
    friend Executable compile(const Graph&, const CompileOptions&);
    friend void save(const Executable&, const std::string&);
    friend Executable load_executable(const std::string&, int);

    // The executable a model file with object code describes: its kernels linked into the JIT (no
    // compilation), its memory allocated, its constants copied out of `m` (which may be freed after).
    // graph() holds only the inputs, outputs and the values the kernels use; groups() is empty.
    static Executable from_model_file(const runtime::ModelFile& m, int threads, const char* who) {
        using runtime::ValueKind;
        Executable ex;
        ex.threads_ = threads > 0 ? threads : m.threads;
        ex.allocate_arena(static_cast<int64_t>(m.arena_bytes), who);
        char* arena = static_cast<char*>(ex.arena_.get());
        std::unordered_map<int32_t, int> new_id;  // saved id -> id in ex.graph_
        for (auto& v : m.values) {
            const int id = ex.graph_.add_value(v.name, TensorType{v.shape, v.dtype});
            new_id[v.id] = id;
            switch (v.kind) {
                case ValueKind::Arena: ex.storage_[id] = Buffer(arena + v.arena_offset, v.shape, v.dtype); break;
                case ValueKind::Constant: {
                    Buffer b = Buffer::uninitialized(v.shape, v.dtype);
                    std::memcpy(b.data(), v.constant.data(), v.constant.size());
                    ex.graph_.values[id].data = b;
                    ex.storage_[id] = b;
                    break;
                }
                case ValueKind::Input:
                case ValueKind::Output: ex.storage_[id] = Buffer(v.shape, v.dtype); break;
            }
        }
        for (auto v : m.inputs) ex.graph_.inputs.push_back(new_id.at(v));
        for (auto v : m.outputs) ex.graph_.outputs.push_back(new_id.at(v));

        std::vector<Kernel> kernels;
        for (auto& k : m.kernels) {
            auto c = std::make_shared<Kernel::Compiled>();
            c->symbol = k.symbol;
            c->target = m.target;
            for (auto& p : k.params) {
                Kernel::Param param{p.name, p.dtype, {}, p.is_output};
                for (int64_t d : p.shape) param.shape.push_back(make_int(i64, d));
                c->params.push_back(std::move(param));
            }
            c->object = std::string(k.object);
            jit::LinkedCode linked = jit::link_object(c->object, c->symbol);
            c->fn = reinterpret_cast<void (*)(void**, int64_t*)>(linked.entry);
            c->code = std::move(linked.code);
            kernels.emplace_back(std::move(c));
        }
        for (auto& s : m.steps) {
            Step st;
            st.name = s.name;
            st.kernel = kernels[s.kernel];
            st.checks = s.checks;
            for (size_t i = 0; i < s.values.size(); ++i) {
                const int id = new_id.at(s.values[i]);
                const Buffer& b = ex.storage_.at(id);
                st.args.push_back(detail::dense_arg(b.data(), b.dtype(), s.shapes[i]));
                st.values.push_back(id);
            }
            ex.steps_.push_back(std::move(st));
        }
        ex.times_.kernels = static_cast<int>(ex.steps_.size());
        ex.times_.distinct_kernels = static_cast<int>(kernels.size());
        return ex;
    }
    struct Step {
        Kernel kernel;
        std::vector<kiln::detail::ArgValue> args;
        std::vector<int> values;  // the value id of each argument
        std::string name;
        std::vector<runtime::ModelFile::IndexCheck> checks;  // indices to refuse before the kernel runs
    };

    // The arena every intermediate lives in, `bytes` from the memory plan.
    void allocate_arena(int64_t bytes, const char* who) {
        const size_t size = static_cast<size_t>(std::max<int64_t>((bytes + 63) / 64 * 64, 64));
        void* arena = std::aligned_alloc(64, size);
        if (!arena) kiln::detail::fail(who, ": could not allocate the ", bytes, "-byte arena");
        arena_ = std::shared_ptr<void>(arena, [](void* p) { std::free(p); });
        arena_bytes_ = bytes;
    }

    static void copy_into(const Buffer& src, const Buffer& dst) {
        if (src.is_contiguous()) {
            std::memcpy(dst.data(), src.data(), static_cast<size_t>(src.size() * src.dtype().bytes()));
            return;
        }
        kiln::detail::fail("set_input: the buffer is not contiguous; pass a row-major buffer");
    }

    Graph graph_;
    std::vector<Group> groups_;
    std::vector<Step> steps_;
    std::unordered_map<int, Buffer> storage_;  // value id -> memory (inputs, outputs, constants, arena views)
    std::shared_ptr<void> arena_;
    int64_t arena_bytes_ = 0;
    int threads_ = 0;
    bool profile_ = false;
    std::vector<ProfileEntry> profile_data_;
    CompileTimes times_;
};

}  // namespace kiln::graph

#if defined(KILN_IMPLEMENTATION) || !defined(KILN_SEPARATE_IMPLEMENTATION)
#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <dlfcn.h>
#include <sys/stat.h>

#include <fstream>

#include "kiln/autotune/records.hpp"
#include "kiln/graph/fingerprint.hpp"
#include "kiln/graph/lower_group.hpp"
#include "kiln/graph/memory_plan.hpp"
#include "kiln/graph/passes/alter_layout.hpp"
#include "kiln/graph/passes/canonicalize.hpp"
#include "kiln/graph/passes/dead_code.hpp"
#include "kiln/graph/passes/eliminate_common_subexpr.hpp"
#include "kiln/graph/passes/fold_scale_axis.hpp"
#include "kiln/graph/passes/fold_constant.hpp"
#include "kiln/graph/passes/fuse_ops.hpp"
#include "kiln/graph/passes/simplify_inference.hpp"
#include "kiln/jit/disk_cache.hpp"

namespace kiln::graph {

namespace detail {

inline std::vector<int64_t> kernel_shape(const TensorType& t) {
    return t.shape.empty() ? std::vector<int64_t>{1} : t.shape;
}

KILN_SEPARABLE std::vector<std::vector<Buffer>> evaluate_nodes(const Graph& g, const std::vector<int>& nodes,
                                                               const Target& target) {
    std::vector<std::optional<GroupSchedule>> scheds(nodes.size());
    std::vector<Kernel> kernels(nodes.size());
    kiln::detail::for_each_on_cores(nodes.size(), [&](size_t i) {
        const Node& n = g.nodes.at(nodes[i]);
        Group grp;
        grp.nodes = {nodes[i]};
        for (int v : n.inputs)
            if (v >= 0 && std::find(grp.inputs.begin(), grp.inputs.end(), v) == grp.inputs.end())
                grp.inputs.push_back(v);
        grp.outputs = n.outputs;
        scheds[i] = lower_group(g, grp, target);
        BuildOptions bo;
        bo.target = target;
        bo.name = "fold";
        bo.opt_level = 0;  // each folding kernel runs once: compiling it quickly is what counts
        kernels[i] = build(scheds[i]->schedule, scheds[i]->args, bo);
    });
    // The kernels run one after another: each spreads its own loops over the thread pool.
    std::vector<std::vector<Buffer>> results;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = g.nodes.at(nodes[i]);
        std::vector<Buffer> outs;
        std::vector<kiln::detail::ArgValue> args;
        for (size_t a = 0; a < scheds[i]->args.size(); ++a) {
            const int v = scheds[i]->arg_values[a];
            const TensorType& t = g.type_of(v);
            if (g.value(v).is_constant()) {
                const Buffer& b = *g.value(v).data;
                args.push_back(dense_arg(b.data(), b.dtype(), kernel_shape(t)));
            } else {
                outs.emplace_back(kernel_shape(t), t.dtype);
                args.push_back(dense_arg(outs.back().data(), t.dtype, kernel_shape(t)));
            }
        }
        kernels[i].call(args);
        // Results in node output order, copied out with their logical (possibly rank-0) shapes.
        std::vector<Buffer> res;
        for (size_t o = 0; o < n.outputs.size(); ++o) {
            const TensorType& t = g.type_of(n.outputs[o]);
            Buffer own(t.shape, t.dtype);
            std::memcpy(own.data(), outs.at(o).data(), static_cast<size_t>(own.size() * t.dtype.bytes()));
            res.push_back(std::move(own));
        }
        results.push_back(std::move(res));
    }
    return results;
}

KILN_SEPARABLE std::vector<Buffer> evaluate_node(const Graph& g, const Node& n, const Target& target) {
    return evaluate_nodes(g, {static_cast<int>(&n - g.nodes.data())}, target).at(0);
}

// Whole-model entries of the disk cache carry this in place of a kernel symbol.
inline constexpr const char* kModelEntrySymbol = "kiln model";

// The binary this code was compiled into: its path, size and modification time. A kernel's entry is keyed
// by its LLVM IR, so a change to kiln's code generator shows in its key; a whole model's entry would skip
// the passes, schedules and lowering that a rebuilt kiln may do differently at the same version, so it is
// keyed by the program too, and a rebuilt program compiles afresh (its old entries age out).
inline std::string program_identity() {
    static const std::string identity = [] {
        Dl_info info{};
        if (!dladdr(reinterpret_cast<void*>(&program_identity), &info) || !info.dli_fname)
            return std::string("unknown program");
        struct stat st {};
        if (::stat(info.dli_fname, &st) != 0) return std::string(info.dli_fname);
        return std::string(info.dli_fname) + " " + std::to_string(st.st_size) + " " +
               std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    }();
    return identity;
}

// What decides the executable: the graph, the options that change its code, the target, the program
// (above), and the versions and settings that key each kernel (build.hpp's disk_cache_key).
inline std::string model_cache_key(const std::string& graph_fingerprint, const CompileOptions& opt,
                                   const std::string& records_identity) {
    return "kiln model\n" + jit::codegen_identity() + "\n" + program_identity() + "\n" +
           jit::resolve(opt.target).str() + "\nopt_level " + std::to_string(opt.opt_level) + "\nrecords " +
           records_identity + "\n" + graph_fingerprint;
}

// A group as a tuning task. With `values`, the model's constants are the values it is measured on.
inline autotune::Task group_task(const Graph& g, const Group& grp, const GroupCompute& c, const Target& target,
                                 bool values) {
    autotune::Task t{grp.name, c.args, [c, target](Knobs& k) { return schedule_group(c, target, &k); }};
    if (values)
        for (size_t a = 0; a < c.arg_values.size(); ++a) {
            const Value& v = g.value(c.arg_values[a]);
            if (!v.is_constant() || c.args[a].op()->kind != OpKind::Placeholder) continue;
            t.inputs.resize(a + 1);
            t.inputs[a] = Buffer(kernel_shape(v.type), v.type.dtype);
            std::memcpy(t.inputs[a].data(), v.data->data(), static_cast<size_t>(v.data->size() * v.type.dtype.bytes()));
        }
    return t;
}

// Why a group's kernel cannot be measured on drawn inputs: indices that come from outside the kernel
// (random ones would read out of bounds), or sizes known only when it runs. Empty when it can.
inline std::string untunable_because(const Graph& g, const Group& grp, const autotune::Task& t) {
    for (int id : grp.nodes) {
        const Node& n = g.nodes[id];
        const OpDef* def = OpRegistry::get().find(n.op);
        if (!def || !def->indices) continue;
        const int v = n.inputs[def->indices(g, n).first];
        if (!g.value(v).is_constant() && std::find(grp.inputs.begin(), grp.inputs.end(), v) != grp.inputs.end())
            return graph::detail::who(n) + " reads indices from '" + g.value(v).name +
                   "', which tuning cannot draw at random";
    }
    try {
        autotune::detail::check_tunable(t);
    } catch (const Error& e) { return e.what(); }
    return {};
}

// The group's schedule from the fastest record of its compute on this machine, or the default.
inline Schedule tuned_schedule(const Graph& g, const Group& grp, const GroupCompute& c, const Target& target,
                               const autotune::RecordFile& file, int threads, bool& tuned) {
    const autotune::Task t = group_task(g, grp, c, target, false);
    const auto best = autotune::best_record(file.records, t.workload_key(), autotune::tuning_target(target), threads);
    if (!best) return schedule_group(c, target);
    const KnobSpace space = t.space();
    const auto config = config_of(space, best->config);
    if (!config) return schedule_group(c, target);  // a record of an older template: its knobs differ
    tuned = true;
    return t.schedule(space, *config);
}

// Builds each distinct program once, the distinct ones on every core, and returns a kernel per function;
// `distinct` is how many were built.
inline std::vector<Kernel> build_kernels(const std::vector<LoweredFunc>& funcs, const BuildOptions& bo,
                                         int& distinct_count) {
    std::unordered_map<std::string, size_t> first_of;
    std::vector<size_t> distinct;
    std::vector<std::string> texts(funcs.size());
    for (size_t k = 0; k < funcs.size(); ++k) {
        texts[k] = to_string(funcs[k]);
        if (first_of.emplace(texts[k], k).second) distinct.push_back(k);
    }
    // Longest first (by the length of the program, which is what LLVM's time follows): a long kernel taken
    // last would leave the other cores idle while it compiles.
    std::stable_sort(distinct.begin(), distinct.end(),
                     [&](size_t a, size_t b) { return texts[a].size() > texts[b].size(); });
    std::vector<Kernel> kernels(funcs.size());
    kiln::detail::for_each_on_cores(distinct.size(),
                                    [&](size_t i) { kernels[distinct[i]] = build(funcs[distinct[i]], bo); });
    for (size_t k = 0; k < funcs.size(); ++k) kernels[k] = kernels[first_of.at(texts[k])];
    distinct_count = static_cast<int>(distinct.size());
    return kernels;
}

}  // namespace detail

KILN_SEPARABLE Graph optimize(const Graph& input, const CompileOptions& opt) {
    Graph g = passes::dead_code_elimination(input);
    auto dump = [&](const std::string& pass) {
        if (opt.dump) opt.dump(pass, g, nullptr);
    };
    dump("import");
    const auto fold = [&](const Graph& gg, const std::vector<int>& nodes) {
        return detail::evaluate_nodes(gg, nodes, opt.target);
    };
    if (opt.opt_level >= 2) {
        g = passes::canonicalize(g);
        dump("canonicalize");
        g = passes::eliminate_common_subexpr(g);
        dump("eliminate_common_subexpr");
        g = passes::simplify_inference(g);
        dump("simplify_inference");
        g = passes::fold_scale_axis(g);
        dump("fold_scale_axis");
        g = passes::fold_constant(g, fold);
        dump("fold_constant");
    }
    if (opt.opt_level >= 3) {
        g = passes::alter_layout(g, opt.target);
        dump("alter_layout");
        // Packs the convolution weights the layout pass asked for, once.
        g = passes::fold_constant(g, fold);
        dump("fold_constant");
    }
    return g;
}

KILN_SEPARABLE Executable compile(const Graph& model, const CompileOptions& opt) {
    using clock = std::chrono::steady_clock;
    auto ms_since = [](clock::time_point t) {
        return std::chrono::duration<double, std::milli>(clock::now() - t).count();
    };
    const auto t_start = clock::now();
    if (opt.opt_level < 0 || opt.opt_level > 3)
        kiln::detail::fail("graph::compile: opt_level is ", opt.opt_level, "; use 0 to 3");
    if (opt.threads < 0)
        kiln::detail::fail("graph::compile: threads is ", opt.threads, "; use 0 (keep) or a positive count");
    // The records are read once; the executable's cache key holds what they say and the thread count that
    // picks among them.
    autotune::RecordFile records;
    std::string records_identity = "none";
    const int threads = opt.threads > 0 ? opt.threads : kiln::num_threads();
    if (!opt.records.empty()) {
        std::ifstream in(opt.records, std::ios::binary);
        if (!in)
            kiln::detail::fail("graph::compile: cannot read the records file '", opt.records,
                               "'; give the file `kiln tune` (or autotune::tune) wrote, or leave records empty "
                               "for the default schedules");
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        records = autotune::load_records(opt.records);
        records_identity = std::to_string(runtime::hash64(text)) + " threads " + std::to_string(threads);
    }
    // The whole executable from the disk cache, when this graph was compiled with these options before.
    auto& disk = jit::DiskCache::instance();
    std::string model_key;
    if (opt.cache_executable && !opt.dump && opt.target.kind == "llvm" && disk.enabled())
        if (auto print = fingerprint(model)) model_key = detail::model_cache_key(*print, opt, records_identity);
    if (!model_key.empty())
        if (auto entry = disk.load(model_key); entry && entry->symbol == detail::kModelEntrySymbol) {
            try {
                const runtime::ModelFileContext ctx{"graph::compile", "the disk cache", "it is recompiled"};
                Executable ex = Executable::from_model_file(runtime::read_model_file(entry->object, ctx, ""),
                                                            opt.threads, "graph::compile");
                ex.times_.from_disk_cache = true;
                ex.times_.disk_cache_hits = ex.times_.distinct_kernels;
                ex.times_.llvm_ms = ex.times_.total_ms = ms_since(t_start);
                return ex;
            } catch (const Error&) {
                // An entry that passed its checksum but does not read or link is compiled afresh and replaced.
            }
        }

    Executable ex;
    ex.threads_ = opt.threads;
    // Constant folding runs its kernels on the threads the executable will use.
    if (opt.threads > 0 && kiln::num_threads() != opt.threads) kiln::set_num_threads(opt.threads);
    ex.graph_ = optimize(model, opt);
    const Graph& g = ex.graph_;
    ex.groups_ = opt.opt_level >= 1 ? passes::fuse_ops(g) : passes::no_fusion(g);
    if (opt.dump) opt.dump("fuse_ops", g, &ex.groups_);
    ex.times_.passes_ms = ms_since(t_start);

    // Groups lower on every core, and then the distinct programs compile on every core.
    const auto t_lower = clock::now();
    std::vector<std::optional<GroupSchedule>> scheds(ex.groups_.size());
    std::vector<LoweredFunc> funcs(ex.groups_.size());
    std::vector<char> tuned(ex.groups_.size(), 0);
    kiln::detail::for_each_on_cores(ex.groups_.size(), [&](size_t k) {
        GroupCompute c = group_compute(g, ex.groups_[k]);
        bool from_record = false;
        Schedule s = opt.records.empty()
                             ? schedule_group(c, opt.target)
                             : detail::tuned_schedule(g, ex.groups_[k], c, opt.target, records, threads, from_record);
        tuned[k] = from_record;
        scheds[k] = GroupSchedule{std::move(s), std::move(c.args), std::move(c.arg_values)};
        funcs[k] = lower_func(scheds[k]->schedule, scheds[k]->args, LowerOptions{"fused", ""});
    });
    ex.times_.tuned_kernels = static_cast<int>(std::count(tuned.begin(), tuned.end(), 1));
    ex.times_.damaged_records = records.damaged;
    ex.times_.lower_ms = ms_since(t_lower);
    const auto t_llvm = clock::now();
    BuildOptions bo;
    bo.target = opt.target;
    bo.keep_object = true;  // graph::save stores it
    int distinct = 0;
    const std::vector<Kernel> kernels = detail::build_kernels(funcs, bo, distinct);
    ex.times_.llvm_ms = ms_since(t_llvm);
    ex.times_.kernels = static_cast<int>(funcs.size());
    ex.times_.distinct_kernels = distinct;
    std::unordered_set<const Kernel::Compiled*> counted;
    for (auto& k : kernels)
        if (counted.insert(&k.compiled()).second) ex.times_.disk_cache_hits += k.compiled().from_disk_cache;

    std::vector<std::vector<int>> step_values;
    for (auto& sc : scheds) step_values.push_back(sc->arg_values);
    const detail::MemoryPlan plan = detail::plan_memory(g, step_values);
    ex.allocate_arena(plan.arena_bytes, "graph::compile");
    char* arena = static_cast<char*>(ex.arena_.get());
    for (auto& [v, offset] : plan.offsets)
        ex.storage_[v] = Buffer(arena + offset, g.type_of(v).shape, g.type_of(v).dtype);
    for (size_t v = 0; v < g.values.size(); ++v) {
        const int id = static_cast<int>(v);
        if (ex.storage_.count(id)) continue;
        const Value& val = g.values[v];
        if (val.is_constant())
            ex.storage_[id] = *val.data;
        else if (plan.own_buffer(g, id))
            ex.storage_[id] = Buffer(val.type.shape, val.type.dtype);
    }
    for (size_t k = 0; k < ex.groups_.size(); ++k) {
        Executable::Step st;
        st.kernel = kernels[k];
        st.name = ex.groups_[k].name;
        for (int v : scheds[k]->arg_values) {
            const Buffer& b = ex.storage_.at(v);
            st.args.push_back(detail::dense_arg(b.data(), b.dtype(), detail::kernel_shape(g.type_of(v))));
            st.values.push_back(v);
        }
        // Indices that arrive from outside the kernel are checked before it runs; constant ones were checked
        // when the model was imported, and ones computed inside the kernel are clamped.
        for (int id : ex.groups_[k].nodes) {
            const Node& n = g.nodes[id];
            const OpDef* def = OpRegistry::get().find(n.op);
            if (!def || !def->indices) continue;
            const auto [input, extent] = def->indices(g, n);
            const int v = n.inputs[input];
            const auto& args = scheds[k]->arg_values;
            const auto at = std::find(args.begin(), args.end(), v);
            if (g.value(v).is_constant() || at == args.end()) continue;
            st.checks.push_back({static_cast<uint32_t>(at - args.begin()), extent, graph::detail::who(n)});
        }
        ex.steps_.push_back(std::move(st));
    }
    ex.times_.total_ms = ms_since(t_start);
    if (!model_key.empty()) {
        try {
            disk.store(model_key, detail::kModelEntrySymbol, runtime::write_model_file(ex.describe(true)));
        } catch (const Error&) {
            // Symbolic sizes: the executable cannot be described as a file, so only its kernels are cached.
        }
    }
    return ex;
}

KILN_SEPARABLE std::vector<ModelTask> tasks(const Graph& model, const CompileOptions& opt) {
    if (opt.opt_level < 0 || opt.opt_level > 3)
        kiln::detail::fail("graph::tasks: opt_level is ", opt.opt_level, "; use 0 to 3");
    if (opt.threads > 0 && kiln::num_threads() != opt.threads) kiln::set_num_threads(opt.threads);
    const Graph g = optimize(model, opt);
    const std::vector<Group> groups = opt.opt_level >= 1 ? passes::fuse_ops(g) : passes::no_fusion(g);
    std::vector<std::optional<GroupCompute>> computes(groups.size());
    std::vector<std::string> keys(groups.size());
    kiln::detail::for_each_on_cores(groups.size(), [&](size_t k) {
        computes[k] = group_compute(g, groups[k]);
        keys[k] = detail::group_task(g, groups[k], *computes[k], opt.target, false).workload_key();
    });
    std::vector<ModelTask> out;
    std::unordered_map<std::string, size_t> index;
    for (size_t k = 0; k < groups.size(); ++k) {
        auto [it, fresh] = index.emplace(keys[k], out.size());
        if (!fresh) {
            out[it->second].weight++;
            continue;
        }
        ModelTask mt;
        mt.task = detail::group_task(g, groups[k], *computes[k], opt.target, true);
        mt.weight = 1;
        mt.skipped = detail::untunable_because(g, groups[k], mt.task);
        out.push_back(std::move(mt));
    }
    return out;
}

}  // namespace kiln::graph
#endif  // the implementation
