// Every model tests/graph/make_models.py builds, imported, compiled and run by kiln, against the outputs
// ONNX Runtime gave for the same inputs. Small operator cases run at opt levels 0 and 3; the whole
// models (ResNet-18, MobileNet-V2 blocks, a transformer encoder) at every level, one and two threads.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>
#include <kiln/runtime/npy.hpp>

#include "graph/files.hpp"

namespace {

double max_rel_error(const kiln::Buffer& got, const kiln::Buffer& want) {
    auto as_double = [](const kiln::Buffer& b, int64_t i) -> double {
        if (b.dtype() == kiln::f32) return static_cast<const float*>(b.data())[i];
        if (b.dtype() == kiln::i64) return static_cast<double>(static_cast<const int64_t*>(b.data())[i]);
        if (b.dtype() == kiln::i32) return static_cast<const int32_t*>(b.data())[i];
        if (b.dtype().is_bool()) return static_cast<const bool*>(b.data())[i];
        if (b.dtype() == kiln::f64) return static_cast<const double*>(b.data())[i];
        FAIL("unexpected output type ", b.dtype().str());
        return 0;
    };
    double worst = 0;
    for (int64_t i = 0; i < want.size(); ++i) {
        const double a = as_double(got, i), b = as_double(want, i);
        // NaN where ONNX Runtime gives NaN, and the same infinity where it gives one: anything else is wrong.
        if (std::isnan(a) || std::isnan(b) || std::isinf(a) || std::isinf(b)) {
            if (!(std::isnan(a) && std::isnan(b)) && a != b) return INFINITY;
            continue;
        }
        worst = std::max(worst, std::abs(a - b) / std::max(1.0, std::abs(b)));
    }
    return worst;
}

void run_case(const std::string& dir, double tol, int opt_level, int threads) {
    std::vector<kiln::Buffer> inputs;
    for (int k = 0; std::filesystem::exists(dir + "/input_" + std::to_string(k) + ".npy"); ++k)
        inputs.push_back(kiln::npy::load(dir + "/input_" + std::to_string(k) + ".npy"));
    auto g = kiln::onnx::load(dir + "/model.onnx");
    auto ex = kiln::graph::compile(g, {.opt_level = opt_level, .threads = threads});
    REQUIRE(g.inputs.size() == inputs.size());
    for (size_t k = 0; k < inputs.size(); ++k) ex.set_input(k, inputs[k]);
    ex.run();
    for (size_t k = 0; k < ex.num_outputs(); ++k) {
        auto want = kiln::npy::load(dir + "/output_" + std::to_string(k) + ".npy");
        auto got = ex.output(k);
        INFO("output ", k, " (", ex.output_name(k), ") at opt level ", opt_level, ", ", threads, " thread(s)");
        REQUIRE(got.size() == want.size());
        CHECK(max_rel_error(got, want) <= tol);
    }
}

}  // namespace

TEST_CASE("graph: ONNX models against ONNX Runtime") {
    const std::string root = test::path_setting("KILN_GRAPH_MODELS");
    std::ifstream list(root + "/cases.txt");
    REQUIRE_MESSAGE(list.good(), "no cases.txt in ", root, "; tests/graph/make_models.py writes it");
    std::string name;
    double tol;
    int cases = 0;
    while (list >> name >> tol) {
        const bool whole_model = name.rfind("model_", 0) == 0;
        for (int level : whole_model ? std::vector<int>{0, 1, 2, 3} : std::vector<int>{0, 3}) {
            for (int threads : whole_model&& level == 3 ? std::vector<int>{1, 2} : std::vector<int>{2}) {
                CAPTURE(name);
                CAPTURE(level);
                try {
                    run_case(root + "/" + name, tol, level, threads);
                } catch (const kiln::Error& e) {
                    const std::string msg = name + " at opt level " + std::to_string(level) + ": " + e.what();
                    FAIL_CHECK(msg);
                }
            }
        }
        ++cases;
    }
    CHECK(cases > 100);
}
