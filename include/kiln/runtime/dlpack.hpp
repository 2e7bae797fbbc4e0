#pragma once
// DLPack (dlpack/dlpack.h, Debian's libdlpack-dev): a kiln::Buffer to and from a DLManagedTensor without
// copying, so tensors pass between kiln and PyTorch, NumPy, JAX, TVM or ONNX Runtime as they are.
// Host memory only: kiln's kernels run on the CPU.
//
//   kiln::Buffer x = kiln::from_dlpack(managed);   // x shares the tensor's memory and calls its deleter last
//   DLManagedTensor* t = kiln::to_dlpack(y);       // t keeps y's memory alive until t->deleter(t)
//
// Element types: bool, i8..i64, u8..u64, f16, f32, f64 with one lane. A bool goes out as DLPack's
// kDLBool (code 6, 8 bits), which DLPack 0.6's header does not name yet but its readers since 0.8 know.
#include <dlpack/dlpack.h>

#include <memory>
#include <string>
#include <vector>

#include "kiln/error.hpp"
#include "kiln/runtime/buffer.hpp"

namespace kiln {

namespace detail {

inline constexpr uint8_t kDLPackBoolCode = 6;  // kDLBool from DLPack 0.8 on

inline Type type_from_dlpack(DLDataType t, const char* who) {
    if (t.lanes != 1)
        fail(who, ": the tensor has vector elements of ", t.lanes, " lanes; kiln buffers hold one lane per element");
    const int bits = t.bits;
    switch (t.code) {
        case kDLInt:
            if (bits == 8 || bits == 16 || bits == 32 || bits == 64)
                return Type{TypeCode::Int, static_cast<uint8_t>(bits), 1};
            break;
        case kDLUInt:
            if (bits == 8 || bits == 16 || bits == 32 || bits == 64)
                return Type{TypeCode::UInt, static_cast<uint8_t>(bits), 1};
            break;
        case kDLFloat:
            if (bits == 16 || bits == 32 || bits == 64) return Type{TypeCode::Float, static_cast<uint8_t>(bits), 1};
            break;
        case kDLPackBoolCode:
            if (bits == 8) return boolean;
            break;
        default: break;
    }
    fail(who, ": DLPack element type (code ", int(t.code), ", ", bits,
         " bits) has no kiln equivalent; kiln holds bool, i8..i64, u8..u64, f16, f32 and f64");
}

inline DLDataType type_to_dlpack(Type t) {
    if (t.lanes != 1 || t.is_handle()) fail("to_dlpack: a buffer of ", t.str(), " has no DLPack element type");
    if (t.is_bool()) return DLDataType{kDLPackBoolCode, 8, 1};
    return DLDataType{static_cast<uint8_t>(t.is_int() ? kDLInt : t.is_uint() ? kDLUInt : kDLFloat), t.bits, 1};
}

}  // namespace detail

// A buffer over the memory of `tensor`, which it takes over: the tensor's deleter runs when the last copy
// of the buffer is gone (and at once if this throws). Strides are kept; a tensor without strides is
// row-major. Only CPU tensors can be taken.
inline Buffer from_dlpack(DLManagedTensor* tensor) {
    if (!tensor) detail::fail("from_dlpack: the tensor is null");
    std::shared_ptr<DLManagedTensor> owner(tensor, [](DLManagedTensor* t) {
        if (t->deleter) t->deleter(t);
    });
    const DLTensor& t = tensor->dl_tensor;
    if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost)
        detail::fail("from_dlpack: the tensor is on device type ", int(t.device.device_type),
                     "; kiln buffers hold host memory, so copy it to the CPU first (e.g. tensor.cpu() in PyTorch)");
    if (t.ndim < 0) detail::fail("from_dlpack: the tensor has ", t.ndim, " dimensions");
    const Type dtype = detail::type_from_dlpack(t.dtype, "from_dlpack");
    std::vector<int64_t> shape(t.shape, t.shape + t.ndim), strides;
    int64_t elements = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] < 0) detail::fail("from_dlpack: dimension ", d, " of the tensor has size ", shape[d]);
        elements *= shape[d];
    }
    if (t.strides) strides.assign(t.strides, t.strides + t.ndim);
    if (!t.data && elements > 0)
        detail::fail("from_dlpack: the tensor has ", elements, " elements but no data pointer");
    void* data = static_cast<char*>(t.data) + t.byte_offset;
    return Buffer(std::shared_ptr<void>(owner, data), data, std::move(shape), dtype, std::move(strides));
}

// A DLManagedTensor over the memory of `buffer`, for another framework to take (torch.from_dlpack,
// numpy.from_dlpack through a capsule, ...). It holds a copy of the buffer, so the memory stays alive until
// the taker calls its deleter, which frees the DLManagedTensor too.
inline DLManagedTensor* to_dlpack(const Buffer& buffer) {
    struct Holder {
        DLManagedTensor managed{};
        Buffer buffer;
        std::vector<int64_t> shape, strides;
    };
    auto holder = std::make_unique<Holder>();
    holder->buffer = buffer;
    holder->shape = buffer.shape();
    holder->strides = buffer.strides();
    DLTensor& t = holder->managed.dl_tensor;
    t.data = buffer.data();
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(holder->shape.size());
    t.dtype = detail::type_to_dlpack(buffer.dtype());
    t.shape = holder->shape.data();
    t.strides = holder->strides.data();
    t.byte_offset = 0;
    holder->managed.manager_ctx = holder.get();
    holder->managed.deleter = [](DLManagedTensor* self) { delete static_cast<Holder*>(self->manager_ctx); };
    return &holder.release()->managed;
}

}  // namespace kiln
