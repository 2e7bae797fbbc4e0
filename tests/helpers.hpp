#pragma once
#include <doctest/doctest.h>

#include <kiln/build.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

namespace test {

// A cache directory of the test's own, empty; the environment's choice comes back afterwards.
struct TempCache {
    std::filesystem::path dir;
    explicit TempCache(const std::string& name)
            : dir(std::filesystem::temp_directory_path() /
                  ("kiln_cache_test_" + name + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(dir);
        kiln::set_cache_dir(dir.string());
    }
    ~TempCache() {
        kiln::set_cache_dir("");
        kiln::set_cache_limit(int64_t{1} << 30);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::vector<std::filesystem::path> files() const {
        std::vector<std::filesystem::path> out;
        std::error_code ec;
        for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
             ++it)
            out.push_back(it->path());
        std::sort(out.begin(), out.end());
        return out;
    }
};

inline kiln::Buffer random_buffer(std::vector<int64_t> shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
    kiln::Buffer b(std::move(shape), kiln::f32);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    float* p = b.data_as<float>();
    for (int64_t i = 0; i < b.size(); ++i) p[i] = d(rng);
    return b;
}

inline double max_rel_err(const float* got, const float* want, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
        double d = std::abs(double(got[i]) - double(want[i])) / (1.0 + std::abs(double(want[i])));
        if (!(d <= worst)) worst = d;  // NaN counts as worst
        if (std::isnan(d)) return INFINITY;
    }
    return worst;
}

// The message of the kiln::Error that f throws, or "" when it throws none.
template <typename F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const kiln::Error& e) { return e.what(); }
    return "";
}

}  // namespace test
