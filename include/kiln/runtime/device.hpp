#pragma once
// GPUs as kiln sees them: kiln::Device (a device of a GPU kind, found by kind and index) and
// kiln::DeviceBuffer (an n-d array in its memory, copied from and to host Buffers). A kernel built for a
// GPU target takes DeviceBuffers as a CPU kernel takes Buffers; its launches queue on the device in order,
// and a copy to the host waits for them. No LLVM here.
#include <string>
#include <vector>

#include "kiln/runtime/buffer.hpp"
#include "kiln/runtime/cuda.hpp"
#include "kiln/runtime/opencl.hpp"

namespace kiln {

namespace detail {

// The runtime of a GPU kind ("opencl", "cuda"), or nullptr for any other kind.
inline DeviceAPI* device_api(const std::string& kind) {
    if (kind == "opencl") return &OpenCLAPI::get();
    if (kind == "cuda") return &CUDAAPI::get();
    return nullptr;
}

inline const std::vector<std::string>& gpu_kinds() {
    static const std::vector<std::string> kinds = {"cuda", "opencl"};
    return kinds;
}

}  // namespace detail

class Device {
public:
    Device() = default;

    // Every device of `kind` ("opencl", "cuda"), or of every GPU kind when `kind` is empty.
    static std::vector<Device> list(const std::string& kind = "") {
        std::vector<Device> out;
        for (auto& k : detail::gpu_kinds()) {
            if (!kind.empty() && k != kind) continue;
            auto* api = detail::device_api(k);
            for (int i = 0; i < api->count(); ++i) out.push_back(Device(k, i));
        }
        return out;
    }

    // Device `index` of `kind`; an error that lists the devices there are otherwise.
    static Device get(const std::string& kind, int index = 0) {
        auto* api = detail::device_api(kind);
        if (!api) detail::fail("Device: '", kind, "' is not a GPU kind; use \"opencl\" or \"cuda\"");
        if (index >= 0 && index < api->count()) return Device(kind, index);
        detail::fail("Device: there is no ", kind, " device ", index, "; ", describe_all(),
                     api->count() ? "" : " (" + kind + ": " + api->unavailable() + ")");
    }

    // "there are no GPU devices" or "the devices are opencl:0 (name), ...": for error messages.
    static std::string describe_all() {
        std::string all;
        for (auto& d : list()) all += (all.empty() ? "" : ", ") + d.str();
        return all.empty() ? "there are no GPU devices" : "the devices are " + all;
    }

    const std::string& kind() const { return kind_; }
    int index() const { return index_; }
    bool defined() const { return !kind_.empty(); }
    detail::DeviceProps props() const { return api()->props(index_); }
    std::string str() const { return kind_ + ":" + std::to_string(index_) + " (" + props().name + ")"; }
    // Waits until everything queued on the device has run.
    void synchronize() const { api()->synchronize(index_); }
    detail::DeviceAPI* api() const {
        if (!defined()) detail::fail("Device: an empty kiln::Device; get one with kiln::Device::get(kind, index)");
        return detail::device_api(kind_);
    }
    bool operator==(const Device& o) const { return kind_ == o.kind_ && index_ == o.index_; }

private:
    Device(std::string kind, int index) : kind_(std::move(kind)), index_(index) {}
    std::string kind_;
    int index_ = 0;
};

class DeviceBuffer {
public:
    DeviceBuffer() = default;

    // Uninitialised memory of `shape` on `device`.
    DeviceBuffer(const Device& device, std::vector<int64_t> shape, Type dtype = f32)
            : device_(device), dtype_(dtype), shape_(std::move(shape)) {
        for (int64_t d : shape_)
            if (d < 0) detail::fail("DeviceBuffer: a dimension of size ", d, "; sizes are 0 or more");
        void* h = device.api()->alloc(device.index(), static_cast<size_t>(bytes()));
        handle_ = std::shared_ptr<void>(h, [device](void* p) { device.api()->release(device.index(), p); });
    }

    // A copy of a host buffer on `device`.
    static DeviceBuffer from(const Buffer& host, const Device& device) {
        DeviceBuffer d(device, host.shape(), host.dtype());
        d.copy_from(host);
        return d;
    }

    void copy_from(const Buffer& host) {
        check_same("copy_from", host);
        if (!host.is_contiguous())
            detail::fail("DeviceBuffer::copy_from: the host buffer is strided; copy it into a contiguous Buffer first");
        device_.api()->copy_to_device(device_.index(), handle(), host.data(), static_cast<size_t>(bytes()));
    }
    // Waits for the kernels queued before it that write this buffer.
    void copy_to(const Buffer& host) const {
        check_same("copy_to", host);
        if (!host.is_contiguous())
            detail::fail("DeviceBuffer::copy_to: the host buffer is strided; copy into a contiguous Buffer");
        device_.api()->copy_to_host(device_.index(), host.data(), handle(), static_cast<size_t>(bytes()));
    }
    Buffer to_host() const {
        Buffer b = Buffer::uninitialized(shape_, dtype_);
        copy_to(b);
        return b;
    }
    // Every element set to `value`, converted to the buffer's type.
    void fill(double value) {
        Buffer b(shape_, dtype_);
        fill_host(b, value);
        copy_from(b);
    }

    void* handle() const {
        if (!handle_) detail::fail("DeviceBuffer: an empty kiln::DeviceBuffer; construct it on a Device");
        return handle_.get();
    }
    const Device& device() const { return device_; }
    Type dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t size() const {
        int64_t n = 1;
        for (int64_t d : shape_) n *= d;
        return n;
    }
    int64_t bytes() const { return size() * dtype_.bytes(); }

private:
    void check_same(const char* what, const Buffer& host) const {
        if (host.dtype() != dtype_ || host.shape() != shape_)
            detail::fail("DeviceBuffer::", what, ": the host buffer is ", host.dtype().str(), shape_str(host.shape()),
                         " but the device buffer is ", dtype_.str(), shape_str(shape_),
                         "; give a host buffer of the same shape and type");
    }
    static std::string shape_str(const std::vector<int64_t>& s) {
        std::string out = "[";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
        return out + "]";
    }
    static void fill_host(Buffer& b, double v) {
        const Type t = b.dtype();
        for (int64_t i = 0; i < b.size(); ++i) {
            auto* p = static_cast<char*>(b.data()) + i * t.bytes();
            if (t.is_float() && t.bits == 32)
                *reinterpret_cast<float*>(p) = static_cast<float>(v);
            else if (t.is_float() && t.bits == 64)
                *reinterpret_cast<double*>(p) = v;
            else if (t.bits == 64)
                *reinterpret_cast<int64_t*>(p) = static_cast<int64_t>(v);
            else if (t.bits == 32)
                *reinterpret_cast<int32_t*>(p) = static_cast<int32_t>(v);
            else if (t.bits == 16 && !t.is_float())
                *reinterpret_cast<int16_t*>(p) = static_cast<int16_t>(v);
            else if (t.bits == 8 || t.is_bool())
                *reinterpret_cast<int8_t*>(p) = static_cast<int8_t>(v);
            else
                detail::fail("DeviceBuffer::fill: cannot fill ", t.str(), " elements");
        }
    }

    Device device_;
    Type dtype_ = f32;
    std::vector<int64_t> shape_;
    std::shared_ptr<void> handle_;
};

}  // namespace kiln
