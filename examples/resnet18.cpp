// The end-to-end path: a ResNet-18 ONNX model (tests/graph/make_models.py --only resnet18 builds one with
// random weights, and ONNX Runtime's output for its input) imported, optimised at level 3, compiled and
// run on one and two threads; checked against ONNX Runtime's output and timed next to it; then saved
// (MODEL_DIR/resnet18.kiln) and loaded back, as a program that starts often would.
//
//   resnet18 MODEL_DIR [ORT_LATENCY_FILE]
// MODEL_DIR holds model.onnx, input_0.npy and output_0.npy; ORT_LATENCY_FILE, from scripts/ort_latency.py,
// holds "threads median_ms" lines measured just before.
#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>
#include <kiln/runtime/npy.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: resnet18 MODEL_DIR [ORT_LATENCY_FILE]\n");
        return 2;
    }
    const std::string dir = argv[1];
    std::map<int, double> ort_ms;
    if (argc > 2) {
        std::ifstream f(argv[2]);
        for (int t; f >> t;) f >> ort_ms[t];
    }
    try {
        using clock = std::chrono::steady_clock;
        const auto t0 = clock::now();
        const kiln::graph::Graph model = kiln::onnx::load(dir + "/model.onnx", {{"input", {1, 3, 224, 224}}});
        const double import_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
        const kiln::Buffer image = kiln::npy::load(dir + "/input_0.npy"), want = kiln::npy::load(dir + "/output_0.npy");
        std::printf("ResNet-18, batch 1, fp32: %s\n\n", dir.c_str());
        std::printf("threads  compile ms  kernels  kiln ms  ONNX Runtime ms  speed-up vs ORT  max rel. error vs ORT\n");
        for (int threads : {2, 1}) {
            auto exe = kiln::graph::compile(model, {.opt_level = 3, .threads = threads});
            exe.set_input("input", image);
            for (int i = 0; i < 5; ++i) exe.run();
            std::vector<double> t;
            for (int i = 0; i < 30; ++i) {
                const auto a = clock::now();
                exe.run();
                t.push_back(std::chrono::duration<double, std::milli>(clock::now() - a).count());
            }
            std::sort(t.begin(), t.end());
            const kiln::Buffer got = exe.output(0);
            double err = 0;
            for (int64_t i = 0; i < want.size(); ++i) {
                const double a = static_cast<const float*>(got.data())[i],
                             b = static_cast<const float*>(want.data())[i];
                err = std::max(err, std::abs(a - b) / std::max(1.0, std::abs(b)));
            }
            const double ms = t[t.size() / 2];
            char ort[32] = "-", speed[32] = "-";
            if (ort_ms.count(threads)) {
                std::snprintf(ort, sizeof ort, "%.2f", ort_ms[threads]);
                std::snprintf(speed, sizeof speed, "%.2fx", ort_ms[threads] / ms);
            }
            std::printf("%7d  %10.0f  %7d  %7.2f  %15s  %15s  %.1e %s\n", threads,
                        import_ms + exe.compile_times().total_ms, static_cast<int>(exe.num_kernels()), ms, ort, speed,
                        err, err <= 1e-4 ? "(ok, <= 1e-4)" : "(MISMATCH)");
            if (err > 1e-4) return 1;
        }
        std::printf(
                "\ncompile = import + graph passes + lowering + LLVM: cold for the first row, the second reuses the "
                "kernels\n"
                "already compiled in this process; latency = median of 30 runs.\n");

        auto exe = kiln::graph::compile(model, {.opt_level = 3, .threads = 2});
        exe.set_input("input", image);
        exe.run();
        const std::string saved = dir + "/resnet18.kiln";
        kiln::graph::save(exe, saved);
        const auto t_load = clock::now();
        auto loaded = kiln::graph::load_executable(saved);
        const double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t_load).count();
        loaded.set_input("input", image);
        loaded.run();
        const bool same = std::memcmp(loaded.output(0).data(), exe.output(0).data(),
                                      static_cast<size_t>(want.size()) * sizeof(float)) == 0;
        std::printf("\nsaved to %s; loaded back in %.0f ms (linked, not compiled); output %s\n", saved.c_str(), load_ms,
                    same ? "identical" : "DIFFERS");
        if (!same) return 1;
        if (ort_ms.empty()) std::printf("(ONNX Runtime's latency was not given; scripts/demo.sh measures it)\n");
    } catch (const kiln::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
