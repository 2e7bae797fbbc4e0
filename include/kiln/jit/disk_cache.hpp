#pragma once
// The kernel cache on disk. kiln::build stores the object code of every kernel it compiles and, in a later
// process, links a stored one instead of running LLVM's optimiser and code generator (most of a cold
// compile). An entry is keyed by the kernel's unoptimised LLVM IR (which follows from the lowered program
// and from kiln's code generator, so a kiln built from other sources never reads a stale entry even at the
// same version), the target and the versions of kiln and LLVM; the key is stored in the entry and compared,
// so a collision of file names is a miss.
//
// Where: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln; KILN_CACHE_DIR=off (or
// kiln::set_cache_dir("off"), or BuildOptions::use_disk_cache = false) turns it off. Entries are written to
// a temporary file and renamed into place, so processes compiling at once share a directory safely; each is
// checksummed, and a damaged, truncated or foreign one is a miss, replaced by the recompiled kernel. The
// directory is held under a size bound (1 GiB unless KILN_CACHE_MAX_BYTES or kiln::set_cache_limit says
// otherwise) by removing the least recently used entries. A directory that cannot be written only means
// nothing is stored. This header includes no LLVM.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/error.hpp"
#include "kiln/runtime/hash.hpp"

namespace kiln {

struct CacheInfo {
    std::string dir;        // empty when the cache is off
    bool writable = false;  // whether new entries can be stored there
    int64_t entries = 0;
    int64_t bytes = 0;
    int64_t limit_bytes = 0;
};

namespace jit {

class DiskCache {
public:
    // Views into the entry's file, mapped into memory for as long as the Entry lives: a whole model's
    // entry is tens of MiB, which is read without a copy.
    struct Entry {
        std::shared_ptr<const void> mapping;
        std::string_view symbol, object;
    };

    static DiskCache& instance() {
        static DiskCache cache;
        return cache;
    }

    // "" goes back to the environment's choice; "off" turns the cache off.
    void set_dir(const std::string& dir) {
        std::lock_guard<std::mutex> lk(m_);
        dir_ = resolve_dir(dir.empty() ? from_environment() : dir);
        scanned_ = false;
    }

    void set_limit(int64_t bytes) {
        if (bytes < 0)
            kiln::detail::fail("set_cache_limit: the limit is ", bytes, " bytes; give 0 (store nothing) or more");
        std::lock_guard<std::mutex> lk(m_);
        limit_ = bytes;
    }

    bool enabled() const {
        std::lock_guard<std::mutex> lk(m_);
        return !dir_.empty();
    }

    std::optional<Entry> load(const std::string& key) {
        std::filesystem::path path;
        {
            std::lock_guard<std::mutex> lk(m_);
            if (dir_.empty()) return std::nullopt;
            path = dir_ / file_name(key);
        }
        auto [mapped, size] = map_file(path);
        if (!mapped) return std::nullopt;
        const std::string_view bytes(static_cast<const char*>(mapped.get()), size);
        auto entry = parse(bytes, key);
        if (entry) entry->mapping = std::move(mapped);
        std::error_code ec;
        if (!entry) {
            std::filesystem::remove(path, ec);  // damaged or foreign: the recompiled kernel replaces it
            return std::nullopt;
        }
        // Least recently used goes first when the directory is pruned: a hit counts as a use.
        std::filesystem::last_write_time(path, std::filesystem::file_time_type::clock::now(), ec);
        return entry;
    }

    void store(const std::string& key, const std::string& symbol, const std::string& object) {
        std::lock_guard<std::mutex> lk(m_);
        if (dir_.empty()) return;
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        const std::string bytes = serialize(key, symbol, object);
        if (static_cast<int64_t>(bytes.size()) > limit_) return;
        const std::filesystem::path final_path = dir_ / file_name(key);
        const std::filesystem::path tmp = dir_ / (final_path.filename().string() + ".tmp." +
                                                  std::to_string(::getpid()) + "." + std::to_string(tmp_counter_++));
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            if (!out) return;  // a read-only or missing directory: nothing is stored
            out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
            if (!out.flush()) {
                out.close();
                std::filesystem::remove(tmp, ec);
                return;
            }
        }
        std::filesystem::rename(tmp, final_path, ec);
        if (ec) {
            std::filesystem::remove(tmp, ec);
            return;
        }
        if (!scanned_) {
            approx_bytes_ = scan().bytes;
            scanned_ = true;
        } else {
            approx_bytes_ += static_cast<int64_t>(bytes.size());
        }
        if (approx_bytes_ > limit_) approx_bytes_ = prune(limit_);
    }

    CacheInfo info() const {
        std::lock_guard<std::mutex> lk(m_);
        CacheInfo ci;
        ci.limit_bytes = limit_;
        if (dir_.empty()) return ci;
        ci.dir = dir_.string();
        const Scan s = scan();
        ci.entries = s.entries;
        ci.bytes = s.bytes;
        ci.writable = writable();
        return ci;
    }

    // Removes every entry (and any temporary file a crashed writer left).
    void clear() {
        std::lock_guard<std::mutex> lk(m_);
        if (dir_.empty()) return;
        std::error_code ec;
        for (auto it = std::filesystem::directory_iterator(dir_, ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
            if (is_ours(it->path())) std::filesystem::remove(it->path(), ec);
        approx_bytes_ = 0;
        scanned_ = true;
    }

    // The file an entry for `key` lives in (tests damage entries through it).
    std::filesystem::path path_of(const std::string& key) const {
        std::lock_guard<std::mutex> lk(m_);
        return dir_.empty() ? std::filesystem::path() : dir_ / file_name(key);
    }

private:
    static constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'K', 'C', '0', '1'};
    static constexpr const char* kSuffix = ".kc";

    DiskCache() {
        dir_ = resolve_dir(from_environment());
        if (const char* s = std::getenv("KILN_CACHE_MAX_BYTES")) {
            char* end = nullptr;
            const long long v = std::strtoll(s, &end, 10);
            if (end != s && *end == '\0' && v >= 0) limit_ = v;
        }
    }

    static std::string from_environment() {
        if (const char* d = std::getenv("KILN_CACHE_DIR"); d && *d) return d;
        if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/kiln";
        if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/kiln";
        return "off";  // nowhere to put it
    }

    static std::filesystem::path resolve_dir(const std::string& d) {
        return d == "off" ? std::filesystem::path() : std::filesystem::path(d);
    }

    // 128 bits of name from two hashes; the full key inside the entry settles any collision.
    static std::string file_name(const std::string& key) {
        char buf[40];
        std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(runtime::hash64(key)),
                      static_cast<unsigned long long>(runtime::hash64(key, 0x9e3779b97f4a7c15ull)));
        return std::string(buf) + kSuffix;
    }

    static void put_u64(std::string& out, uint64_t v) {
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    static bool get_u64(std::string_view& in, uint64_t& v) {
        if (in.size() < 8) return false;
        v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<unsigned char>(in[i])) << (8 * i);
        in.remove_prefix(8);
        return true;
    }
    static bool get_string(std::string_view& in, std::string_view& s) {
        uint64_t n = 0;
        if (!get_u64(in, n) || n > in.size()) return false;
        s = in.substr(0, n);
        in.remove_prefix(n);
        return true;
    }

    // magic, checksum of the rest, then key, symbol and object, each as a length and its bytes.
    static std::string serialize(const std::string& key, const std::string& symbol, const std::string& object) {
        std::string body;
        for (const std::string* s : {&key, &symbol, &object}) {
            put_u64(body, s->size());
            body += *s;
        }
        std::string out(kMagic, sizeof kMagic);
        put_u64(out, runtime::hash64(body));
        return out + body;
    }

    // The file, read-only and populated in one call, and its size; null if it cannot be read.
    static std::pair<std::shared_ptr<const void>, size_t> map_file(const std::filesystem::path& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return {nullptr, 0};
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
            ::close(fd);
            return {nullptr, 0};
        }
        const size_t size = static_cast<size_t>(st.st_size);
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        ::close(fd);
        if (p == MAP_FAILED) return {nullptr, 0};
        return {std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); }), size};
    }

    static std::optional<Entry> parse(std::string_view bytes, const std::string& key) {
        if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return std::nullopt;
        bytes.remove_prefix(sizeof kMagic);
        uint64_t sum = 0;
        if (!get_u64(bytes, sum) || runtime::hash64(bytes) != sum) return std::nullopt;
        std::string_view stored_key;
        Entry e;
        if (!get_string(bytes, stored_key) || stored_key != key || !get_string(bytes, e.symbol) ||
            !get_string(bytes, e.object) || !bytes.empty() || e.symbol.empty() || e.object.empty())
            return std::nullopt;
        return e;
    }

    static bool ends_with(const std::string& s, std::string_view suffix) {
        return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    }
    static bool is_entry(const std::filesystem::path& p) { return ends_with(p.filename().string(), kSuffix); }
    static bool is_ours(const std::filesystem::path& p) {
        return is_entry(p) || p.filename().string().find(std::string(kSuffix) + ".tmp.") != std::string::npos;
    }

    struct Scan {
        int64_t entries = 0, bytes = 0;
    };
    Scan scan() const {
        Scan s;
        std::error_code ec;
        for (auto it = std::filesystem::directory_iterator(dir_, ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
            if (!is_entry(it->path())) continue;
            std::error_code fe;
            const auto size = it->file_size(fe);
            if (fe) continue;
            ++s.entries;
            s.bytes += static_cast<int64_t>(size);
        }
        return s;
    }

    bool writable() const {
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        return ::access(dir_.c_str(), W_OK | X_OK) == 0;
    }

    // Removes the least recently used entries until the rest fit in `limit`; returns their size.
    int64_t prune(int64_t limit) {
        struct File {
            std::filesystem::path path;
            std::filesystem::file_time_type used;
            int64_t bytes;
        };
        std::vector<File> files;
        int64_t total = 0;
        std::error_code ec;
        for (auto it = std::filesystem::directory_iterator(dir_, ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
            if (!is_entry(it->path())) continue;
            std::error_code fe;
            File f{it->path(), it->last_write_time(fe), 0};
            f.bytes = static_cast<int64_t>(it->file_size(fe));
            if (fe) continue;
            total += f.bytes;
            files.push_back(std::move(f));
        }
        std::sort(files.begin(), files.end(), [](const File& a, const File& b) { return a.used < b.used; });
        for (const File& f : files) {
            if (total <= limit) break;
            std::error_code re;
            if (std::filesystem::remove(f.path, re)) total -= f.bytes;
        }
        return total;
    }

    mutable std::mutex m_;
    std::filesystem::path dir_;
    int64_t limit_ = int64_t{1} << 30;
    int64_t approx_bytes_ = 0;
    bool scanned_ = false;
    uint64_t tmp_counter_ = 0;
};

}  // namespace jit

// The disk kernel cache (see kiln/jit/disk_cache.hpp): where it is, how full, and its controls.
inline CacheInfo cache_info() { return jit::DiskCache::instance().info(); }
inline void set_cache_dir(const std::string& dir) { jit::DiskCache::instance().set_dir(dir); }
inline void set_cache_limit(int64_t bytes) { jit::DiskCache::instance().set_limit(bytes); }

}  // namespace kiln
