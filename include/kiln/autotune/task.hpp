#pragma once
// A tuning task: a compute (its arguments, as kiln::build takes them), a schedule template that reads
// knobs (kiln/schedule/knobs.hpp), and the workload key records are filed under. The key is a hash of
// the compute definition as text (every stage's name, type, shape, axes and body, and the argument
// list), so equal computes share records and a different shape or dtype never picks up another's.
#include <cstdio>
#include <functional>
#include <sstream>

#include "kiln/kiln.hpp"
#include "kiln/runtime/hash.hpp"
#include "kiln/schedule/knobs.hpp"

namespace kiln::autotune {

struct Task {
    std::string name;                               // for people: records and reports show it
    std::vector<Tensor> args;                       // inputs and outputs, as kiln::build takes them
    std::function<Schedule(Knobs&)> make_schedule;  // the template; default Knobs give the default schedule
    double flops = 0;                               // per call, for GFLOP/s in reports; 0 when not known

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

}  // namespace kiln::autotune
