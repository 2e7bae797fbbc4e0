#pragma once
// The thread pool behind parallel loops. Workers spin briefly before sleeping, so back-to-back
// parallel loops hand off in microseconds; a parallel loop inside another runs serially.
#include <atomic>

#include <condition_variable>
#include <exception>
#include <future>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/config.hpp"

namespace kiln::runtime {

class ThreadPool {
public:
    explicit ThreadPool(int threads) { resize(threads); }
    ~ThreadPool() { stop(); }

    int size() const { return threads_.load(std::memory_order_relaxed); }

    void resize(int threads) {
        std::lock_guard<std::mutex> run(run_mutex_);
        stop();
        threads_.store(std::max(1, threads), std::memory_order_relaxed);
        quit_ = false;
        // New workers start from the current generation: a loop that ran before the resize is not theirs.
        const uint64_t now = generation_.load(std::memory_order_acquire);
        for (int t = 1; t < size(); ++t) workers_.emplace_back([this, now] { worker(now); });
    }

    // Calls fn(i, closure) for i in [0, n), split into contiguous chunks across the threads.
    KILN_CALLS_GENERATED_CODE void parallel_for(void (*fn)(int32_t, void*), void* closure, int32_t n) {
        if (n <= 0) return;
        if (in_parallel() || threads_.load(std::memory_order_relaxed) == 1 || n == 1) {
            for (int32_t i = 0; i < n; ++i) fn(i, closure);
            return;
        }
        std::lock_guard<std::mutex> run(run_mutex_);
        {
            std::lock_guard<std::mutex> lk(m_);
            fn_ = fn;
            closure_ = closure;
            n_ = n;
            next_.store(0, std::memory_order_relaxed);
            gate_.store(0, std::memory_order_release);  // open, nobody in
            generation_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        run_chunks();
        // Close the loop to workers that have not joined yet and wait only for those inside. A worker the
        // OS has not run yet (a descheduled vCPU, one still waking up) took no chunk and holds nobody up:
        // its share went to the threads that were there.
        const int64_t inside = gate_.fetch_or(kClosed, std::memory_order_acq_rel);
        for (int spin = 0; inside != 0 && (gate_.load(std::memory_order_acquire) & ~kClosed) != 0; ++spin) relax(spin);
    }

private:
    static bool& in_parallel() {
        thread_local bool flag = false;
        return flag;
    }

    // Guided chunks: each take is a contiguous run of half a thread's share of what is left, so the
    // first takes are long (neighbouring iterations share weights and input rows, and each thread
    // keeps its own in its L2) and the last ones short, so a thread that the OS delays (a noisy
    // neighbour, an interrupt) leaves its share to the others instead of holding up the whole loop.
    KILN_CALLS_GENERATED_CODE void run_chunks() {
        const int32_t parts = 2 * size();
        in_parallel() = true;
        for (int32_t lo = next_.load(std::memory_order_relaxed);;) {
            if (lo >= n_) break;
            const int32_t take = std::max<int32_t>(1, (n_ - lo) / parts);
            if (!next_.compare_exchange_weak(lo, lo + take, std::memory_order_relaxed)) continue;
            const int32_t hi = std::min<int32_t>(n_, lo + take);
            for (int32_t i = lo; i < hi; ++i) fn_(i, closure_);
            lo = next_.load(std::memory_order_relaxed);
        }
        in_parallel() = false;
    }

    // Busy-waits with the CPU's pause hint first (a hand-off within microseconds), then yields.
    static void relax(int spin) {
        if (spin < 4096) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            std::this_thread::yield();
        }
    }

    void worker(uint64_t seen) {
        for (;;) {
            // Spin a little: the next parallel loop usually follows within microseconds.
            for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen && !quit_.load();
                 ++spin)
                relax(spin);
            {
                std::unique_lock<std::mutex> lk(m_);
                cv_.wait(lk, [&] { return quit_.load() || generation_.load(std::memory_order_acquire) != seen; });
                if (quit_) return;
                seen = generation_.load(std::memory_order_acquire);
            }
            if (!join()) continue;
            run_chunks();
            gate_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    // Enters the current loop unless its caller has already finished and closed it.
    bool join() {
        int64_t g = gate_.load(std::memory_order_acquire);
        while (!(g & kClosed))
            if (gate_.compare_exchange_weak(g, g + 1, std::memory_order_acq_rel, std::memory_order_acquire))
                return true;
        return false;
    }

    void stop() {
        {
            std::lock_guard<std::mutex> lk(m_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    // Read without the lock by callers deciding whether to go parallel; resize changes it between loops.
    std::atomic<int> threads_{1};
    std::vector<std::thread> workers_;
    std::mutex m_, run_mutex_;
    std::condition_variable cv_;
    std::atomic<uint64_t> generation_{0};
    // The workers inside the current loop, with kClosed set once its caller has run out of chunks.
    static constexpr int64_t kClosed = int64_t{1} << 40;
    std::atomic<int64_t> gate_{kClosed};
    std::atomic<int32_t> next_{0};
    std::atomic<bool> quit_{false};
    void (*fn_)(int32_t, void*) = nullptr;
    void* closure_ = nullptr;
    int32_t n_ = 0;
};

inline ThreadPool& thread_pool() {
    static ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    return pool;
}

// Entry points that generated code calls.
extern "C" inline void kiln_parallel_for(void (*fn)(int32_t, void*), void* closure, int32_t n) {
    thread_pool().parallel_for(fn, closure, n);
}

}  // namespace kiln::runtime

namespace kiln {

namespace detail {

// Runs work(0) .. work(count - 1) on up to one thread per core, each index once, and rethrows the first
// error. Compiling is the cost of a start, and it is a list of independent jobs.
inline void for_each_on_cores(size_t count, const std::function<void(size_t)>& work) {
    const unsigned workers =
            std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), static_cast<unsigned>(count)));
    if (workers == 1) {
        for (size_t i = 0; i < count; ++i) work(i);
        return;
    }
    std::atomic<size_t> next{0};
    std::vector<std::future<void>> fs;
    std::exception_ptr err;
    std::mutex err_m;
    for (unsigned w = 0; w < workers; ++w)
        fs.push_back(std::async(std::launch::async, [&] {
            for (size_t i; (i = next.fetch_add(1)) < count;) {
                try {
                    work(i);
                } catch (...) {
                    std::lock_guard<std::mutex> lk(err_m);
                    if (!err) err = std::current_exception();
                }
            }
        }));
    for (auto& f : fs) f.get();
    if (err) std::rethrow_exception(err);
}

}  // namespace detail

// The number of threads parallel loops use (default: the hardware's).
inline void set_num_threads(int n) { runtime::thread_pool().resize(n); }
inline int num_threads() { return runtime::thread_pool().size(); }
}  // namespace kiln
