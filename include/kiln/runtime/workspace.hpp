#pragma once
// Scratch memory for the intermediates a kernel allocates (a padded input, a packed operand). Each
// thread keeps the blocks its kernels freed and hands them out again, like TVM's workspace pool:
// a kernel called in a loop would otherwise map, fault in and unmap the same megabytes on every
// call, which costs as much as a small convolution and varies with the state of the heap.
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace kiln::runtime {

class WorkspaceCache {
public:
    static constexpr size_t kAlign = 64;
    // Blocks kept per thread; beyond this (or kMaxBytes) the oldest goes back to the system.
    static constexpr size_t kMaxBlocks = 16;
    static constexpr size_t kMaxBytes = size_t(512) << 20;

    ~WorkspaceCache() {
        for (auto& b : free_) std::free(b.base);
    }

    void* allocate(int64_t bytes) {
        const size_t size = round_up(static_cast<size_t>(bytes > 0 ? bytes : 1));
        for (size_t i = free_.size(); i-- > 0;) {
            if (free_[i].size != size) continue;
            void* base = free_[i].base;
            cached_bytes_ -= size;
            free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
            return payload(base);
        }
        // One aligned header in front of the block remembers its size for release().
        void* base = std::aligned_alloc(kAlign, size + kAlign);
        if (!base) return nullptr;
        *static_cast<size_t*>(base) = size;
        return payload(base);
    }

    void release(void* p) {
        if (!p) return;
        void* base = static_cast<char*>(p) - kAlign;
        const size_t size = *static_cast<size_t*>(base);
        free_.push_back({base, size});
        cached_bytes_ += size;
        // The oldest blocks go first, erased as one range.
        size_t drop = 0;
        while (free_.size() - drop > kMaxBlocks || cached_bytes_ > kMaxBytes) {
            cached_bytes_ -= free_[drop].size;
            std::free(free_[drop].base);
            ++drop;
        }
        free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(drop));
    }

    size_t cached_blocks() const { return free_.size(); }

private:
    struct Block {
        void* base;
        size_t size;
    };
    static size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
    static void* payload(void* base) { return static_cast<char*>(base) + kAlign; }

    std::vector<Block> free_;
    size_t cached_bytes_ = 0;
};

inline WorkspaceCache& workspace_cache() {
    thread_local WorkspaceCache cache;
    return cache;
}

// Entry points that generated code calls; every block is 64-byte aligned. A block freed on another
// thread than the one that allocated it simply joins that thread's cache.
extern "C" inline void* kiln_alloc(int64_t bytes) { return workspace_cache().allocate(bytes); }
extern "C" inline void kiln_free(void* p) { workspace_cache().release(p); }

}  // namespace kiln::runtime
