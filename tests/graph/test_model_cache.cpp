// Whole executables in the disk cache (graph::compile with CompileOptions::cache_executable): a second compile
// of the same graph with the same options links the stored executable, without passes, lowering or LLVM,
// and gives the outputs of the first bit for bit (and ONNX Runtime's to 1e-4); any change to the graph, its
// constants or the options is a miss; a damaged entry is compiled afresh and replaced; a compile that
// dumps, or that does not ask for it (the default), neither reads nor writes whole entries.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>
#include <kiln/runtime/npy.hpp>

#include "graph/files.hpp"
#include "helpers.hpp"

namespace {

struct Model {
    kiln::graph::Graph graph;
    kiln::Buffer input, want;
};

Model mobilenet_blocks() {
    const std::string dir = test::model_dir("model_mobilenetv2_blocks");
    return {kiln::onnx::load(dir + "/model.onnx"), kiln::npy::load(dir + "/input_0.npy"),
            kiln::npy::load(dir + "/output_0.npy")};
}

kiln::Buffer run(kiln::graph::Executable& exe, const kiln::Buffer& input) {
    exe.set_input(0, input);
    exe.run();
    kiln::Buffer out = exe.output(0);
    kiln::Buffer copy(out.shape(), out.dtype());
    std::memcpy(copy.data(), out.data(), static_cast<size_t>(out.size()) * 4);
    return copy;
}

bool same_bits(const kiln::Buffer& a, const kiln::Buffer& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), static_cast<size_t>(a.size()) * 4) == 0;
}

// The whole-model entry: the largest file, as it holds every kernel and the constants.
std::filesystem::path largest(const std::vector<std::filesystem::path>& files) {
    REQUIRE_FALSE(files.empty());
    return *std::max_element(files.begin(), files.end(), [](const auto& a, const auto& b) {
        return std::filesystem::file_size(a) < std::filesystem::file_size(b);
    });
}

}  // namespace

TEST_CASE("disk cache: a compiled graph is kept whole, and compiling it again links it") {
    test::TempCache cache("model_hit");
    Model m = mobilenet_blocks();
    auto first = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2, .cache_executable = true});
    CHECK_FALSE(first.compile_times().from_disk_cache);
    const auto entries = cache.files().size();
    auto second = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2, .cache_executable = true});
    CHECK(second.compile_times().from_disk_cache);
    CHECK(second.compile_times().disk_cache_hits == second.compile_times().distinct_kernels);
    CHECK(cache.files().size() == entries);  // a hit stores nothing
    CHECK(second.num_kernels() == first.num_kernels());
    CHECK(second.groups().empty());
    const kiln::Buffer a = run(first, m.input), b = run(second, m.input);
    CHECK(same_bits(a, b));
    CHECK(test::max_rel_err(b.data_as<float>(), m.want.data_as<float>(), m.want.size()) < 1e-4);
    // A thread count is not part of the key: the executable from the entry runs on the threads asked for.
    auto one_thread = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 1, .cache_executable = true});
    CHECK(one_thread.compile_times().from_disk_cache);
    CHECK(same_bits(run(one_thread, m.input), a));
}

TEST_CASE("disk cache: another constant, another opt level, a dump or a compile that does not ask is not a hit") {
    test::TempCache cache("model_miss");
    Model m = mobilenet_blocks();
    kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2, .cache_executable = true});

    auto other_level = kiln::graph::compile(m.graph, {.opt_level = 2, .threads = 2, .cache_executable = true});
    CHECK_FALSE(other_level.compile_times().from_disk_cache);

    kiln::graph::CompileOptions dumping{.opt_level = 3, .threads = 2, .cache_executable = true};
    int dumps = 0;
    dumping.dump = [&](const std::string&, const kiln::graph::Graph&, const std::vector<kiln::graph::Group>*) {
        ++dumps;
    };
    auto dumped = kiln::graph::compile(m.graph, dumping);
    CHECK_FALSE(dumped.compile_times().from_disk_cache);
    CHECK(dumps > 0);
    CHECK_FALSE(dumped.groups().empty());

    const auto before = cache.files().size();
    kiln::clear_memory_cache();  // so its kernels come from the disk, not from this process's earlier compiles
    auto by_default = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2});
    CHECK_FALSE(by_default.compile_times().from_disk_cache);
    CHECK_FALSE(by_default.groups().empty());
    CHECK(by_default.compile_times().disk_cache_hits ==
          by_default.compile_times().distinct_kernels);  // its kernels still are
    CHECK(cache.files().size() == before);

    // One weight changed by one unit in the last place: another model, so a miss, and its own outputs.
    kiln::graph::Graph changed = m.graph;
    for (auto& v : changed.values)
        if (v.data && v.data->size() > 1 && v.type.dtype == kiln::f32) {
            kiln::Buffer copy(v.data->shape(), v.data->dtype());
            std::memcpy(copy.data(), v.data->data(), static_cast<size_t>(copy.size()) * 4);
            copy.data_as<float>()[0] = std::nextafter(copy.data_as<float>()[0], 2.0f);
            v.data = copy;
            break;
        }
    auto other = kiln::graph::compile(changed, {.opt_level = 3, .threads = 2, .cache_executable = true});
    CHECK_FALSE(other.compile_times().from_disk_cache);
}

TEST_CASE("disk cache: a damaged whole-model entry is compiled afresh and replaced") {
    test::TempCache cache("model_damaged");
    Model m = mobilenet_blocks();
    auto first = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2, .cache_executable = true});
    const kiln::Buffer want = run(first, m.input);
    const std::filesystem::path entry = largest(cache.files());
    const std::string good = test::read_all(entry.string());
    std::string flipped = good;
    flipped[flipped.size() / 2] ^= 0x21;
    for (const auto& [what, bytes] : std::vector<std::pair<const char*, std::string>>{
                 {"one byte flipped", flipped}, {"truncated", good.substr(0, good.size() / 3)}, {"empty", ""}}) {
        CAPTURE(what);
        test::write_all(entry.string(), bytes);
        auto again = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2, .cache_executable = true});
        CHECK_FALSE(again.compile_times().from_disk_cache);
        CHECK(same_bits(run(again, m.input), want));
        auto linked = kiln::graph::compile(m.graph, {.opt_level = 3, .threads = 2, .cache_executable = true});
        CHECK(linked.compile_times().from_disk_cache);
        CHECK(same_bits(run(linked, m.input), want));
    }
}
