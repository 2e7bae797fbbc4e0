// The disk kernel cache (kiln/jit/disk_cache.hpp): a miss compiles and stores, a hit links the stored
// object and computes the same values; damaged, truncated and foreign entries are recompiled and replaced;
// a full cache drops its least recently used entries; a directory that cannot be written, or the cache
// turned off, only means nothing is stored; two processes filling one directory at once leave it whole.
#include <kiln/build.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "helpers.hpp"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

// B = A * scale + 1 over 37 values (not a multiple of the vector): each scale is a distinct program.
Kernel build_scaled(float scale, bool use_disk_cache = true, int opt_level = 3) {
    auto A = placeholder({37}, f32, "A");
    auto B = compute(
            {37}, [&](Expr i) { return A(i) * scale + 1.0f; }, "B");
    Schedule s(B);
    auto [o, i] = s[B].split(B.axis(0), 8);
    s[B].vectorize(i);
    BuildOptions opt;
    opt.use_cache = false;  // this process's in-memory cache would answer before the disk
    opt.use_disk_cache = use_disk_cache;
    opt.opt_level = opt_level;
    return build(s, {A, B}, opt);
}

void check_scaled(const Kernel& k, float scale) {
    Buffer a = test::random_buffer({37}, 5), b({37});
    k(a, b);
    for (int i = 0; i < 37; ++i) CHECK(b.data_as<float>()[i] == doctest::Approx(a.data_as<float>()[i] * scale + 1.0f));
}

void overwrite(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("disk cache: a miss compiles and stores, a hit links the stored object") {
    test::TempCache cache("hit");
    Kernel first = build_scaled(2.0f);
    CHECK_FALSE(first.compiled().from_disk_cache);
    REQUIRE(cache.files().size() == 1);
    CHECK(cache.files()[0].extension() == ".kc");
    Kernel second = build_scaled(2.0f);
    CHECK(second.compiled().from_disk_cache);
    check_scaled(first, 2.0f);
    check_scaled(second, 2.0f);
    // Another program is another entry.
    Kernel other = build_scaled(3.0f);
    CHECK_FALSE(other.compiled().from_disk_cache);
    check_scaled(other, 3.0f);
    // Off for one build: compiled, nothing stored.
    CHECK_FALSE(build_scaled(4.0f, false).compiled().from_disk_cache);
    const CacheInfo info = cache_info();
    CHECK(info.dir == cache.dir.string());
    CHECK(info.writable);
    CHECK(info.entries == 2);
    CHECK(info.bytes > 0);
    // The in-memory cache still answers first when asked to.
    auto A = placeholder({37}, f32, "A");
    auto B = compute(
            {37}, [&](Expr i) { return A(i) * 5.0f + 1.0f; }, "B");
    Kernel a = build(Schedule(B), {A, B}), b = build(Schedule(B), {A, B});
    CHECK(&a.compiled() == &b.compiled());
    clear_cache();
    CHECK(cache_info().entries == 0);
    CHECK_FALSE(build_scaled(2.0f).compiled().from_disk_cache);
}

TEST_CASE("disk cache: each optimisation level is an entry of its own") {
    test::TempCache cache("levels");
    for (int level = 0; level <= 3; ++level) {
        CAPTURE(level);
        Kernel k = build_scaled(2.0f, true, level);
        CHECK_FALSE(k.compiled().from_disk_cache);
        check_scaled(k, 2.0f);
        CHECK(cache.files().size() == static_cast<size_t>(level + 1));
    }
    for (int level = 0; level <= 3; ++level) {
        CAPTURE(level);
        Kernel k = build_scaled(2.0f, true, level);
        CHECK(k.compiled().from_disk_cache);
        check_scaled(k, 2.0f);
    }
}

TEST_CASE("disk cache: damaged, truncated and foreign entries are recompiled and replaced") {
    test::TempCache cache("damaged");
    build_scaled(2.0f);
    REQUIRE(cache.files().size() == 1);
    const fs::path entry = cache.files()[0];
    const std::string good = read_all(entry);
    REQUIRE(good.size() > 64);
    std::string flipped = good;
    flipped[flipped.size() / 2] ^= 0x5a;
    const std::vector<std::pair<const char*, std::string>> bad = {
            {"one byte flipped", flipped},
            {"truncated", good.substr(0, good.size() / 2)},
            {"empty", ""},
            {"foreign", std::string(4096, 'x')},
            {"header only", good.substr(0, 16)},
    };
    for (const auto& [what, bytes] : bad) {
        CAPTURE(what);
        overwrite(entry, bytes);
        Kernel k = build_scaled(2.0f);
        CHECK_FALSE(k.compiled().from_disk_cache);
        check_scaled(k, 2.0f);
        REQUIRE(cache.files().size() == 1);
        CHECK(read_all(entry) == good);  // replaced by the recompiled kernel
        CHECK(build_scaled(2.0f).compiled().from_disk_cache);
    }
}

TEST_CASE("disk cache: a full cache drops its least recently used entries") {
    test::TempCache cache("prune");
    build_scaled(1.0f);
    REQUIRE(cache.files().size() == 1);
    const int64_t one = static_cast<int64_t>(fs::file_size(cache.files()[0]));
    clear_cache();
    // Room for two entries of this size, not three.
    set_cache_limit(one * 5 / 2);
    for (float s : {1.0f, 2.0f, 3.0f}) {
        build_scaled(s);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct times of last use
    }
    CHECK(cache_info().entries == 2);
    CHECK(cache_info().bytes <= one * 5 / 2);
    // A hit is a use: 2 becomes newer than 3, so the next entry pushes 3 out.
    CHECK(build_scaled(2.0f).compiled().from_disk_cache);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    build_scaled(4.0f);
    CHECK(build_scaled(2.0f).compiled().from_disk_cache);
    CHECK(build_scaled(4.0f).compiled().from_disk_cache);
    CHECK_FALSE(build_scaled(1.0f).compiled().from_disk_cache);
    CHECK(cache_info().entries == 2);
    // An entry larger than the whole limit is not stored.
    set_cache_limit(16);
    clear_cache();
    build_scaled(5.0f);
    CHECK(cache_info().entries == 0);
    CHECK(test::error_of([] { set_cache_limit(-1); }) ==
          "set_cache_limit: the limit is -1 bytes; give 0 (store nothing) or more");
}

TEST_CASE("disk cache: a directory that cannot be written, and the cache turned off") {
    test::TempCache cache("readonly");
    // A path under a regular file can never be created, whoever runs the test.
    fs::create_directories(cache.dir);
    overwrite(cache.dir / "file", "not a directory");
    set_cache_dir((cache.dir / "file" / "sub").string());
    Kernel k = build_scaled(2.0f);
    CHECK_FALSE(k.compiled().from_disk_cache);
    check_scaled(k, 2.0f);
    CHECK_FALSE(cache_info().writable);
    CHECK(cache_info().entries == 0);
    CHECK_FALSE(build_scaled(2.0f).compiled().from_disk_cache);
    if (::geteuid() != 0) {
        // A directory without write permission (root writes anywhere, so only as another user).
        const fs::path ro = cache.dir / "ro";
        fs::create_directories(ro);
        fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
        set_cache_dir(ro.string());
        CHECK_FALSE(build_scaled(2.0f).compiled().from_disk_cache);
        CHECK_FALSE(cache_info().writable);
        CHECK(cache_info().entries == 0);
        fs::permissions(ro, fs::perms::owner_all);
    }
    set_cache_dir("off");
    CHECK(cache_info().dir.empty());
    Kernel off = build_scaled(2.0f);
    CHECK_FALSE(off.compiled().from_disk_cache);
    check_scaled(off, 2.0f);
}

TEST_CASE("disk cache: two processes filling one directory at once leave every entry whole") {
    test::TempCache cache("processes");
    const float scales[] = {11.0f, 12.0f, 13.0f, 14.0f, 15.0f, 16.0f};
    // Each child compiles the same kernels in the same order, so they race to write each entry. A child
    // only compiles (no kernel runs, so no thread of the pool is needed after fork) and exits at once.
    pid_t children[2];
    for (pid_t& child : children) {
        child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            int code = 0;
            try {
                for (float s : scales) build_scaled(s);
            } catch (...) { code = 1; }
            ::_exit(code);
        }
    }
    for (pid_t child : children) {
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    const auto files = cache.files();
    CHECK(files.size() == std::size(scales));  // no temporary file left behind
    for (const auto& f : files) CHECK(f.extension() == ".kc");
    for (float s : scales) {
        Kernel k = build_scaled(s);
        CHECK(k.compiled().from_disk_cache);
        check_scaled(k, s);
    }
}
