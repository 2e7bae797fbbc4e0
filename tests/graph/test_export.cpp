// graph::export_library and the runtime (kiln/runtime.h): an exported model, loaded without LLVM, gives
// the JIT's outputs bit for bit at every opt level and ONNX Runtime's to 1e-4; a C program linking only
// the runtime library runs it and meets misuse with error codes; damaged, foreign and mismatched
// libraries are refused with a message.
#include <doctest/doctest.h>

#include <dlfcn.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>

#include <kiln/graph.hpp>
#include <kiln/graph/export.hpp>
#include <kiln/onnx.hpp>
#include <kiln/runtime.hpp>
#include <kiln/runtime/npy.hpp>

#include "graph/files.hpp"

namespace {

using test::model_dir;
using test::read_all;
using test::temp_path;
using test::write_all;

std::string load_error(const std::string& path) {
    char error[2048];
    kiln_model* m = kiln_model_load(path.c_str(), error, sizeof error);
    if (m) {
        kiln_model_free(m);
        return "(loaded without an error)";
    }
    CHECK(std::string(error) == kiln_last_error());
    return error;
}

kiln::graph::Executable compiled(const std::string& name, int opt_level) {
    auto exe = kiln::graph::compile(kiln::onnx::load(model_dir(name) + "/model.onnx"),
                                    {.opt_level = opt_level, .threads = 2});
    exe.set_input(0, kiln::npy::load(model_dir(name) + "/input_0.npy"));
    exe.run();
    return exe;
}

// Where the model file sits inside an exported library, found as the runtime finds it.
std::pair<size_t, size_t> model_file_in(const std::string& library, const std::string& bytes) {
    void* h = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h);
    const auto size = static_cast<size_t>(*static_cast<const int64_t*>(::dlsym(h, "kiln_model_data_size")));
    ::dlclose(h);
    const size_t at = bytes.find(std::string("KILNEXE\0", 8));
    REQUIRE(at != std::string::npos);
    return {at, size};
}

}  // namespace

TEST_CASE("graph::export_library: the runtime runs an exported model bit for bit like the JIT, at every opt level") {
    for (std::string name : {"model_mobilenetv2_blocks", "model_transformer_encoder"}) {
        for (int opt_level : {0, 1, 2, 3}) {
            INFO(name, " at opt level ", opt_level);
            const kiln::Buffer input = kiln::npy::load(model_dir(name) + "/input_0.npy"),
                               want = kiln::npy::load(model_dir(name) + "/output_0.npy");
            auto exe = compiled(name, opt_level);
            const std::string path = temp_path("kiln_export", ".so");
            kiln::graph::export_library(exe, path);

            kiln::runtime::Model model(path);
            std::filesystem::remove(path);  // loaded: the mapping stays valid
            REQUIRE(model.num_inputs() == 1);
            REQUIRE(model.num_outputs() == 1);
            CHECK(model.input_name(0) == exe.graph().value(exe.graph().inputs[0]).name);
            CHECK(model.input_shape(0) == input.shape());
            CHECK(model.input_dtype(0) == "f32");
            CHECK(model.output_name(0) == exe.output_name(0));
            model.set_input(model.input_name(0), static_cast<const float*>(input.data()), input.shape());
            model.run();
            const auto out = model.output(0);
            const kiln::Buffer jit = exe.output(0);
            REQUIRE(out.shape == jit.shape());
            CHECK(std::memcmp(out.data, jit.data(), static_cast<size_t>(jit.size()) * 4) == 0);
            double worst = 0;
            for (int64_t i = 0; i < want.size(); ++i) {
                const double x = out.data[i], y = static_cast<const float*>(want.data())[i];
                worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
            }
            CHECK(worst <= 1e-4);
        }
    }
}

TEST_CASE("the runtime's C API from a C program that links only libkiln_runtime") {
    const std::string program = test::path_setting("KILN_C_API_CHECK");
    const std::string name = "model_mobilenetv2_blocks";
    auto exe = compiled(name, 3);
    const std::string library = temp_path("kiln_c_api", ".so"), in = temp_path("kiln_c_api_in", ".f32"),
                      out = temp_path("kiln_c_api_out", ".f32");
    kiln::graph::export_library(exe, library);
    const kiln::Buffer input = kiln::npy::load(model_dir(name) + "/input_0.npy");
    write_all(in, std::string(static_cast<const char*>(input.data()), static_cast<size_t>(input.size()) * 4));
    const int status = std::system((std::string(program) + " " + library + " " + in + " " + out).c_str());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    const kiln::Buffer jit = exe.output(0);
    const std::string got = read_all(out);
    REQUIRE(got.size() == static_cast<size_t>(jit.size()) * 4);
    CHECK(std::memcmp(got.data(), jit.data(), got.size()) == 0);
    for (auto& p : {library, in, out}) std::filesystem::remove(p);
}

TEST_CASE("kiln_model_load and the C API errors: missing, foreign, damaged and mismatched libraries, wrong inputs") {
    auto exe = compiled("model_mobilenetv2_blocks", 3);
    const std::string path = temp_path("kiln_export_errors", ".so");
    kiln::graph::export_library(exe, path);
    const std::string good = read_all(path);

    CHECK(load_error("/nonexistent/model.so").rfind("kiln_model_load: cannot open '/nonexistent/model.so': ", 0) == 0);
    const std::string text = temp_path("kiln_not_a_library", ".so");
    write_all(text, "not a shared library");
    const std::string foreign = load_error(text);
    CHECK(foreign.rfind("kiln_model_load: cannot open '" + text + "': ", 0) == 0);
    CHECK(foreign.find("; pass the path of a library written by `kiln export`") != std::string::npos);
    std::filesystem::remove(text);
    const char* libm = "/lib/x86_64-linux-gnu/libm.so.6";
    if (std::filesystem::exists(libm))
        CHECK(load_error(libm) == std::string("kiln_model_load: '") + libm +
                                          "' has no symbol kiln_model_abi; it is not a model exported by kiln (export "
                                          "one with `kiln export` or "
                                          "kiln::graph::export_library)");

    const auto [at, size] = model_file_in(path, good);
    std::string damaged = good;
    damaged[at + size / 2] ^= 0x5a;
    const std::string bad = temp_path("kiln_export_damaged", ".so");
    write_all(bad, damaged);
    CHECK(load_error(bad) ==
          "kiln_model_load: '" + bad +
                  "' is damaged or truncated (its checksum does not match); export the model again with `kiln export`");

    // A library compiled for a CPU feature this one lacks: the target string names it, with a checksum that fits.
    std::string body = good.substr(at, size - 8);
    std::string lacking;
    for (const char* f :
         {"avx512fp16", "amx-tile", "avx512vp2intersect", "avx512bf16", "avx512vnni", "avx512f", "avx2"}) {
        const size_t minus = body.find(std::string(",-") + f + ",");
        if (minus != std::string::npos && !lacking.size()) {
            std::string trial = body;
            trial[minus + 1] = '+';
            const uint64_t h = kiln::runtime::hash64(trial);
            std::string patched = good;
            patched.replace(at, size - 8, trial);
            patched.replace(at + size - 8, 8, std::string(reinterpret_cast<const char*>(&h), 8));
            write_all(bad, patched);
            const std::string msg = load_error(bad);
            if (msg.find("which this CPU lacks") != std::string::npos) {
                lacking = f;
                CHECK(msg.rfind("kiln_model_load: '" + bad + "' was compiled for a CPU with " + f +
                                        ", which this CPU lacks (",
                                0) == 0);
                CHECK(msg.find("code cannot run here); export the model on this machine or for its CPU") !=
                      std::string::npos);
            }
        }
    }
    if (lacking.empty())
        MESSAGE("this CPU has every feature the runtime can test for; the refusal of a foreign CPU's library is not "
                "exercised");
    std::filesystem::remove(bad);

    kiln::runtime::Model model(path);
    const std::string input = model.input_name(0);
    const auto shape = model.input_shape(0);
    std::vector<float> data(
            static_cast<size_t>(std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>())));
    CHECK_THROWS_WITH_AS(
            model.set_input("nope", data.data(), shape),
            ("kiln_model_set_input: the model has no input 'nope'; its inputs are '" + input + "'").c_str(),
            kiln::Error);
    auto wrong = shape;
    wrong.back() += 1;
    std::string dims = "[", wrong_dims = "[";
    for (size_t d = 0; d < shape.size(); ++d)
        dims += (d ? ", " : "") + std::to_string(shape[d]), wrong_dims += (d ? ", " : "") + std::to_string(wrong[d]);
    CHECK_THROWS_WITH_AS(model.set_input(input, data.data(), wrong),
                         ("kiln_model_set_input: input '" + input + "' has shape " + dims +
                          "] but the data passed has shape " + wrong_dims + "]; pass data of the model's input shape")
                                 .c_str(),
                         kiln::Error);
    CHECK_THROWS_WITH_AS(model.output(3), "kiln_model_output: there is no output 3; the model has 1 (indices 0 to 0)",
                         kiln::Error);
    CHECK_THROWS_WITH_AS(model.set_threads(-2),
                         "kiln_model_set_threads: threads is -2; use 0 (keep the pool as it is) or a positive count",
                         kiln::Error);
    CHECK(std::string(kiln_model_input_name(nullptr, 0) ? "" : kiln_last_error()) ==
          "kiln_model_input_name: the model is NULL; pass the kiln_model* that kiln_model_load returned");

    std::string link_error;
    try {
        kiln::graph::export_library(exe, path, {.linker = "false"});
    } catch (const kiln::Error& e) { link_error = e.what(); }
    CHECK(link_error.rfind(
                  "export_library: linking '" + path + "' failed (false -shared -Wl,-z,noexecstack -o '" + path + "'",
                  0) == 0);
    CHECK(link_error.find("name a working linker in ExportOptions::linker or $KILN_CC") != std::string::npos);
    std::filesystem::remove(path);
}

TEST_CASE(
        "graph::export_c_source: the C99 model, built by its own Makefile, runs in the runtime to the JIT's results") {
    for (std::string name : {"model_mobilenetv2_blocks", "model_transformer_encoder"}) {
        INFO(name);
        auto exe = compiled(name, 3);
        const std::string dir = temp_path("kiln_c_model_" + name, "");
        kiln::graph::export_c_source(exe, dir);
        const std::string source = read_all(dir + "/model.c");
        CHECK(source.find("void kiln_kernel_0(void** args, int64_t* sizes)") != std::string::npos);
        CHECK(source.find("#include <immintrin.h>") == std::string::npos);
        REQUIRE(std::system(("make -s -C '" + dir + "' > /dev/null").c_str()) == 0);

        kiln::runtime::Model model(dir + "/model.so");
        const kiln::Buffer input = kiln::npy::load(model_dir(name) + "/input_0.npy");
        model.set_input(model.input_name(0), static_cast<const float*>(input.data()), input.shape());
        model.run();
        const auto out = model.output(0);
        const kiln::Buffer jit = exe.output(0);
        REQUIRE(out.shape == jit.shape());
        double worst = 0;
        for (int64_t i = 0; i < jit.size(); ++i) {
            const double x = out.data[i], y = static_cast<const float*>(jit.data())[i];
            worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
        }
        CHECK(worst <= 1e-5);
        std::filesystem::remove_all(dir);
    }

    // A loaded executable has object code only: nothing to print as C.
    auto exe = compiled("model_mobilenetv2_blocks", 3);
    const std::string saved = temp_path("kiln_c_saved", ".kiln");
    kiln::graph::save(exe, saved);
    auto loaded = kiln::graph::load_executable(saved);
    std::filesystem::remove(saved);
    std::string error;
    try {
        kiln::graph::export_c_source(loaded, temp_path("kiln_c_never", ""));
    } catch (const kiln::Error& e) { error = e.what(); }
    CHECK(error.rfind("export_c_source: kernel 'kiln_", 0) == 0);
    CHECK(error.find("' was linked from object code (a saved executable, or an executable the disk cache kept whole), "
                     "which holds no "
                     "loop IR; compile the model (graph::compile, without CompileOptions::cache_executable) to write "
                     "it as C") != std::string::npos);
}
