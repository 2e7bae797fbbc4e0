// The ONNX backend node conformance tests (onnx/backend/test/data/node from the onnx Python package) for
// the operators kiln's graph layer implements: every test whose nodes all use those operators is loaded,
// compiled at opt level 3 and run on each of its data sets, its outputs compared with the stored ones
// (rtol 1e-3, atol 1e-5, as the ONNX backend runner but with float32 rounding of transcendental functions).
//
//   kiln_onnx_conformance DATA_DIR PASS_LIST EXCLUDED [--report FILE] [--write-pass-list]
//
// EXCLUDED (tests/graph/onnx_conformance_excluded.txt) names, with reasons, the tests of features outside
// what kiln implements (float8 casts, training mode, empty tensors); they are reported, not counted.
// Fails when a test in PASS_LIST (tests/graph/onnx_conformance_pass.txt) fails, or when fewer than 95% of
// the counted tests pass. --write-pass-list rewrites PASS_LIST with the tests that pass now.
#include <onnx/onnx_pb.h>

#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

namespace fs = std::filesystem;

namespace {

// The operators the graph layer promises (issue 4's list).
const std::set<std::string> kOperators = {"Conv",
                                          "ConvTranspose",
                                          "Gemm",
                                          "MatMul",
                                          "Add",
                                          "Sub",
                                          "Mul",
                                          "Div",
                                          "Pow",
                                          "Relu",
                                          "LeakyRelu",
                                          "Clip",
                                          "Sigmoid",
                                          "Tanh",
                                          "Erf",
                                          "Gelu",
                                          "HardSigmoid",
                                          "HardSwish",
                                          "Mish",
                                          "Softmax",
                                          "LogSoftmax",
                                          "BatchNormalization",
                                          "LayerNormalization",
                                          "InstanceNormalization",
                                          "MaxPool",
                                          "AveragePool",
                                          "GlobalAveragePool",
                                          "GlobalMaxPool",
                                          "Reshape",
                                          "Flatten",
                                          "Transpose",
                                          "Concat",
                                          "Split",
                                          "Slice",
                                          "Squeeze",
                                          "Unsqueeze",
                                          "Gather",
                                          "Pad",
                                          "Resize",
                                          "ReduceMean",
                                          "ReduceSum",
                                          "ReduceMax",
                                          "ReduceMin",
                                          "Shape",
                                          "Constant",
                                          "ConstantOfShape",
                                          "Cast",
                                          "Identity",
                                          "Dropout",
                                          "Where",
                                          "Expand",
                                          "Sqrt",
                                          "Exp",
                                          "Log",
                                          "Neg",
                                          "Abs",
                                          "Reciprocal"};

double half_to_double(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v;
    if (exp == 0)
        v = std::ldexp(man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = std::ldexp(man + 1024, exp - 25);
    return sign ? -v : v;
}

double value_at(const kiln::Buffer& b, int64_t i) {
    const void* p = b.data();
    const kiln::Type t = b.dtype();
    if (t == kiln::f32) return static_cast<const float*>(p)[i];
    if (t == kiln::f64) return static_cast<const double*>(p)[i];
    if (t == kiln::f16) return half_to_double(static_cast<const uint16_t*>(p)[i]);
    if (t == kiln::i64) return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    if (t == kiln::i32) return static_cast<const int32_t*>(p)[i];
    if (t == kiln::i8) return static_cast<const int8_t*>(p)[i];
    if (t == kiln::u8 || t == kiln::boolean) return static_cast<const uint8_t*>(p)[i];
    kiln::detail::fail("element type ", t.str(), " is not compared by this runner");
}

// Empty when equal, else what differs.
std::string compare(const kiln::Buffer& got, const kiln::Buffer& want) {
    const int64_t n = want.size();
    if (got.dtype() != want.dtype()) return "element type " + got.dtype().str() + ", expected " + want.dtype().str();
    if (got.size() != n) return "element count " + std::to_string(got.size()) + ", expected " + std::to_string(n);
    if (got.shape() != want.shape()) {
        // A rank-0 result and a [1] result hold the same single value; any other shape is wrong.
        const bool scalar_like = n == 1 && got.shape().size() <= 1 && want.shape().size() <= 1;
        if (!scalar_like)
            return "shape " + kiln::graph::TensorType{got.shape(), got.dtype()}.str() + ", expected " +
                   kiln::graph::TensorType{want.shape(), want.dtype()}.str();
    }
    const bool exact = !got.dtype().is_float();
    for (int64_t i = 0; i < n; ++i) {
        const double a = value_at(got, i), b = value_at(want, i);
        if (std::isnan(a) && std::isnan(b)) continue;
        if (a == b) continue;
        if (!exact && std::fabs(a - b) <= 1e-5 + 1e-3 * std::fabs(b)) continue;
        char s[160];
        std::snprintf(s, sizeof s, "element %lld is %.7g, expected %.7g", static_cast<long long>(i), a, b);
        return s;
    }
    return "";
}

// Empty when the test passes, else why not. kiln compiles static shapes, so integer inputs (a Reshape's
// shape, Pad's pads, Gather's indices) are bound as constants when loading, as a user would bind them
// with LoadOptions::constants; each data set compiles on its own.
std::string run_test(const fs::path& dir) {
    try {
        std::vector<fs::path> sets;
        for (auto& e : fs::directory_iterator(dir))
            if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
                sets.push_back(e.path());
        std::sort(sets.begin(), sets.end());
        if (sets.empty()) return "no test data sets";
        ::onnx::ModelProto proto;
        {
            std::ifstream f(dir / "model.onnx", std::ios::binary);
            std::stringstream ss;
            ss << f.rdbuf();
            if (!proto.ParseFromString(ss.str())) return "model.onnx does not parse";
        }
        std::set<std::string> initializers, parameters;
        for (const auto& t : proto.graph().initializer()) initializers.insert(t.name());
        // Inputs that decide a result's shape or an operator's constants (Resize's scales, Clip's bounds,
        // Pad's constant value) are known when compiling; so are all non-float inputs.
        static const std::set<std::string> param_ops = {
                "Resize",  "Clip",      "Pad",        "Slice",     "Reshape",   "Expand",    "Split",
                "Squeeze", "Unsqueeze", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ConstantOfShape"};
        for (const auto& n : proto.graph().node())
            if (param_ops.count(n.op_type()))
                for (int i = 1; i < n.input_size(); ++i) parameters.insert(n.input(i));
        std::vector<std::string> input_names;
        for (const auto& in : proto.graph().input())
            if (!initializers.count(in.name())) input_names.push_back(in.name());
        for (auto& set : sets) {
            std::vector<kiln::Buffer> inputs;
            for (size_t i = 0; fs::exists(set / ("input_" + std::to_string(i) + ".pb")); ++i)
                inputs.push_back(kiln::onnx::load_tensor((set / ("input_" + std::to_string(i) + ".pb")).string()));
            if (inputs.size() > input_names.size()) return set.filename().string() + " has more inputs than the model";
            kiln::onnx::LoadOptions lo;
            for (size_t i = 0; i < inputs.size(); ++i) {
                if (!inputs[i].dtype().is_float() || parameters.count(input_names[i]))
                    lo.constants[input_names[i]] = inputs[i];
                else
                    lo.shapes[input_names[i]] = inputs[i].shape();
            }
            kiln::graph::Graph g = kiln::onnx::load((dir / "model.onnx").string(), lo);
            kiln::graph::Executable exe = kiln::graph::compile(g, {.opt_level = 3, .threads = 1});
            for (size_t i = 0; i < inputs.size(); ++i)
                if (!lo.constants.count(input_names[i])) exe.set_input(input_names[i], inputs[i]);
            exe.run();
            for (size_t i = 0; fs::exists(set / ("output_" + std::to_string(i) + ".pb")); ++i) {
                if (i >= exe.num_outputs()) return "the model has fewer outputs than the data set";
                const std::string diff =
                        compare(exe.output(i),
                                kiln::onnx::load_tensor((set / ("output_" + std::to_string(i) + ".pb")).string()));
                if (!diff.empty()) return set.filename().string() + " output " + std::to_string(i) + ": " + diff;
            }
        }
        return "";
    } catch (const std::exception& e) {
        std::string m = e.what();
        return m.substr(0, m.find('\n'));
    }
}

// The operators a test uses, or nothing when its model cannot be read.
std::set<std::string> ops_of(const fs::path& model) {
    std::ifstream f(model, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    ::onnx::ModelProto m;
    std::set<std::string> ops;
    if (!m.ParseFromString(ss.str())) return ops;
    for (const auto& n : m.graph().node())
        ops.insert(n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type() : n.domain() + "." + n.op_type());
    return ops;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr,
                     "usage: kiln_onnx_conformance DATA_DIR PASS_LIST EXCLUDED [--report FILE] [--write-pass-list]\n");
        return 2;
    }
    const fs::path data = argv[1], pass_list = argv[2], excluded_list = argv[3];
    std::string report_path;
    bool write = false;
    for (int i = 4; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--report" && i + 1 < argc)
            report_path = argv[++i];
        else if (a == "--write-pass-list")
            write = true;
        else {
            std::fprintf(stderr, "kiln_onnx_conformance: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    if (!fs::is_directory(data)) {
        std::fprintf(stderr,
                     "kiln_onnx_conformance: '%s' is not a directory (the onnx package's backend/test/data/node)\n",
                     data.c_str());
        return 2;
    }
    std::set<std::string> expected;
    {
        std::ifstream f(pass_list);
        for (std::string line; std::getline(f, line);)
            if (!line.empty() && line[0] != '#') expected.insert(line);
    }
    struct Exclusion {
        std::string pattern, reason;
        std::regex re;
        int count = 0;
    };
    std::vector<Exclusion> exclusions;
    {
        std::ifstream f(excluded_list);
        if (!f) {
            std::fprintf(stderr, "kiln_onnx_conformance: cannot read '%s'\n", excluded_list.c_str());
            return 2;
        }
        for (std::string line; std::getline(f, line);) {
            if (line.empty() || line[0] == '#') continue;
            const auto hash = line.find('#');
            std::string pat = line.substr(0, hash), reason = hash == std::string::npos ? "" : line.substr(hash + 1);
            pat.erase(pat.find_last_not_of(" \t") + 1);
            reason.erase(0, reason.find_first_not_of(" \t"));
            exclusions.push_back({pat, reason, std::regex(pat), 0});
        }
    }
    std::vector<fs::path> dirs;
    for (auto& e : fs::directory_iterator(data))
        if (e.is_directory()) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());

    std::vector<std::string> passed;
    std::vector<std::pair<std::string, std::string>> failed;
    for (auto& d : dirs) {
        const auto ops = ops_of(d / "model.onnx");
        if (ops.empty() ||
            !std::all_of(ops.begin(), ops.end(), [](const std::string& op) { return kOperators.count(op) > 0; }))
            continue;
        const std::string name = d.filename().string();
        bool skip = false;
        for (auto& x : exclusions)
            if (!skip && std::regex_match(name, x.re)) ++x.count, skip = true;
        if (skip) continue;
        const std::string why = run_test(d);
        if (why.empty())
            passed.push_back(name);
        else
            failed.push_back({name, why});
    }
    const size_t total = passed.size() + failed.size();
    const double rate = total ? 100.0 * static_cast<double>(passed.size()) / static_cast<double>(total) : 0.0;

    std::ostringstream rep;
    for (auto& [name, why] : failed) rep << "FAIL " << name << ": " << why << "\n";
    int regressions = 0;
    for (auto& [name, why] : failed)
        if (expected.count(name)) {
            rep << "REGRESSION " << name << " is in the pass list but failed: " << why << "\n";
            ++regressions;
        }
    size_t newly = 0;
    for (auto& name : passed) newly += expected.count(name) ? 0 : 1;
    int excluded = 0;
    for (auto& x : exclusions) {
        rep << "EXCLUDED " << x.count << " x " << x.pattern << ": " << x.reason << "\n";
        excluded += x.count;
    }
    char summary[320];
    std::snprintf(summary, sizeof summary,
                  "ONNX node conformance: %zu of %zu tests pass (%.1f%%) for the %zu listed operators; %zu failed, %d "
                  "regressed, %zu newly passing; "
                  "%d excluded (%zu of %zu counting them)\n",
                  passed.size(), total, rate, kOperators.size(), failed.size(), regressions, newly, excluded,
                  passed.size(), total + excluded);
    rep << summary;
    std::fputs(rep.str().c_str(), stdout);
    if (!report_path.empty()) std::ofstream(report_path) << rep.str();
    if (write) {
        std::ofstream f(pass_list);
        f << "# ONNX backend node tests kiln passes (onnx 1.17.0 test data); kiln_onnx_conformance --write-pass-list "
             "rewrites it.\n";
        for (auto& name : passed) f << name << "\n";
    }
    if (total == 0) {
        std::fprintf(stderr, "kiln_onnx_conformance: no tests found under '%s'\n", data.c_str());
        return 1;
    }
    return regressions == 0 && rate >= 95.0 ? 0 : 1;
}
