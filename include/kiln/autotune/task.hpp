#pragma once
// A tuning task: a compute (its arguments, as kiln::build takes them), a schedule template that reads
// knobs (kiln/schedule/knobs.hpp), and the workload key records are filed under. The key is a hash of
// the compute definition as text (every stage's name, type, shape, axes and body, and the argument
// list), so equal computes share records and a different shape or dtype never picks up another's.
#include <cstdio>
#include <functional>
#include <sstream>

#include "kiln/build.hpp"
#include "kiln/kiln.hpp"
#include "kiln/runtime/hash.hpp"
#include "kiln/schedule/knobs.hpp"

namespace kiln::autotune {

// The machine records are filed under: the CPU's name and a hash of everything the code generator is told
// about it (features, vector width).
inline std::string tuning_target(const Target& target = {}) {
    const Target t = jit::resolve(target);
    char hex[24];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(runtime::hash64(t.str())));
    return t.cpu + " " + hex;
}

struct Task {
    std::string name;                               // for people: records and reports show it
    std::vector<Tensor> args;                       // inputs and outputs, as kiln::build takes them
    std::function<Schedule(Knobs&)> make_schedule;  // the template; default Knobs give the default schedule
    double flops = 0;                               // per call, for GFLOP/s in reports; 0 when not known
    // Values to measure with, by argument (an input whose values matter, as indices do, or a model's
    // weights); an argument past the end or with an empty Buffer is drawn at random.
    std::vector<Buffer> inputs{};

    // The compute definition the key hashes.
    std::string definition() const {
        std::ostringstream os;
        os << "args";
        for (const Tensor& t : args) os << " " << t.name();
        os << "\n";
        std::vector<Tensor> outputs;
        for (const Tensor& t : args)
            if (t.op()->kind == OpKind::Compute) outputs.push_back(t);
        if (outputs.empty())
            kiln::detail::fail("autotune: task '", name,
                               "' has no computed tensor among its arguments; list the outputs "
                               "after the inputs, as kiln::build takes them");
        const Schedule all(outputs);
        for (const auto& stage : all.stages()) print_op(os, *stage->op);
        for (const Tensor& t : args)
            if (t.op()->kind == OpKind::Placeholder) print_op(os, *t.op());
        return os.str();
    }

    std::string workload_key() const {
        char hex[24];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(runtime::hash64(definition())));
        return hex;
    }

    // The knobs the template declares (it runs once with default Knobs).
    KnobSpace space() const {
        Knobs k;
        check();
        make_schedule(k);
        return k.space();
    }

    // The schedule for one configuration of `space`.
    Schedule schedule(const KnobSpace& space, const KnobConfig& config) const {
        check();
        Knobs k(space, config);
        Schedule s = make_schedule(k);
        if (k.declared() != space.knobs.size())
            kiln::detail::fail("autotune: task '", name, "': the template read ", k.declared(), " of its ",
                               space.knobs.size(),
                               " knob(s) for this configuration; a template must declare the same "
                               "knobs whatever values it is given");
        return s;
    }

private:
    void check() const {
        if (!make_schedule)
            kiln::detail::fail("autotune: task '", name, "' has no schedule template; set Task::make_schedule");
    }
    static void print_op(std::ostream& os, const OperationNode& op) {
        os << (op.kind == OpKind::Compute ? "compute " : "placeholder ") << op.name << " " << op.dtype.str() << " [";
        for (size_t d = 0; d < op.shape.size(); ++d) os << (d ? ", " : "") << op.shape[d];
        os << "]";
        if (op.kind == OpKind::Compute) {
            for (const IterVar& iv : op.axis) os << " " << iv.name() << ":" << iv.dom().extent;
            for (const IterVar& iv : op.reduce_axis) os << " reduce " << iv.name() << ":" << iv.dom().extent;
            os << " = " << op.body;
        }
        os << "\n";
    }
};

namespace detail {

inline std::vector<int64_t> shape_of(const Tensor& t) {
    std::vector<int64_t> s;
    for (const Expr& e : t.op()->shape) s.push_back(*as_const_int(e));
    return s;
}

inline void check_tunable(const Task& task) {
    for (const Tensor& t : task.args) {
        for (size_t d = 0; d < t.op()->shape.size(); ++d)
            if (!as_const_int(t.op()->shape[d]))
                kiln::detail::fail("autotune: task '", task.name, "': tensor '", t.name(), "' has size '",
                                   to_string(t.op()->shape[d]), "' in dimension ", d,
                                   "; tuning measures one shape, so give the task constant sizes");
        const Type ty = t.dtype();
        if (!(ty == f32 || ty == f64 || ty.is_integer() || ty.is_bool()))
            kiln::detail::fail("autotune: task '", task.name, "': tensor '", t.name(), "' holds ", ty.str(),
                               "; tuning fills and checks f32, f64, integer and bool tensors only");
    }
    if (task.inputs.size() > task.args.size())
        kiln::detail::fail("autotune: task '", task.name, "' gives ", task.inputs.size(), " input values for ",
                           task.args.size(), " arguments; give at most one per argument");
    auto dims = [](const std::vector<int64_t>& shape) {
        std::string out = "[";
        for (size_t d = 0; d < shape.size(); ++d) out += (d ? ", " : "") + std::to_string(shape[d]);
        return out + "]";
    };
    for (size_t a = 0; a < task.inputs.size(); ++a) {
        const Buffer& b = task.inputs[a];
        const Tensor& t = task.args[a];
        if (!b.data()) continue;
        if (t.op()->kind != OpKind::Placeholder)
            kiln::detail::fail("autotune: task '", task.name, "' gives values for '", t.name(),
                               "', which the kernel computes; give values for inputs (placeholders) only");
        if (b.shape() != shape_of(t) || b.dtype() != t.dtype())
            kiln::detail::fail("autotune: task '", task.name, "': the values given for '", t.name(), "' are ",
                               b.dtype().str(), " of shape ", dims(b.shape()), " but the tensor is ", t.dtype().str(),
                               " of shape ", dims(shape_of(t)), "; give a buffer of the tensor's type and shape");
    }
}

}  // namespace detail

}  // namespace kiln::autotune
