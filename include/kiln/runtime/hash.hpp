#pragma once
// The 64-bit hash kiln checksums its files with (disk cache entries, saved and exported models) and
// names cache entries by. Files run to tens of MiB of weights and are checked on every load, so it
// mixes four 8-byte lanes at a time: the lanes do not wait on each other, which keeps a 45 MiB model
// to a few milliseconds. Not cryptographic: it catches damage, not intent.
#include <cstdint>
#include <cstring>
#include <string_view>

namespace kiln::runtime {

inline uint64_t hash64(std::string_view s, uint64_t seed = 14695981039346656037ull) {
    constexpr uint64_t k = 0x9fb21c651e98df25ull;
    // One multiply and a rotate a word: five cycles of latency, so four lanes keep pace with memory.
    auto mix = [](uint64_t h, uint64_t w) {
        h = (h ^ w) * k;
        return (h << 31) | (h >> 33);
    };
    auto word = [&](size_t at) {
        uint64_t w;
        std::memcpy(&w, s.data() + at, 8);
        return w;
    };
    uint64_t a = seed, b = seed ^ 0x9e3779b97f4a7c15ull, c = seed ^ 0xc2b2ae3d27d4eb4full,
             d = seed ^ 0x165667b19e3779f9ull;
    size_t i = 0;
    for (; i + 32 <= s.size(); i += 32) {
        a = mix(a, word(i));
        b = mix(b, word(i + 8));
        c = mix(c, word(i + 16));
        d = mix(d, word(i + 24));
    }
    uint64_t h = mix(mix(mix(a, b), c), d);
    h ^= h >> 29;
    for (; i + 8 <= s.size(); i += 8) h = mix(h, word(i));
    for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 1099511628211ull;
    h ^= s.size();
    h *= k;
    return h ^ (h >> 32);
}

}  // namespace kiln::runtime
