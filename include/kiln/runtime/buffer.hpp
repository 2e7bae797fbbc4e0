#pragma once
// kiln::Buffer: an n-d array with shape, strides (in elements) and element type. An owning buffer
// is 64-byte aligned and zero-initialised; a borrowing one wraps memory the caller keeps alive.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "kiln/ir/type.hpp"

namespace kiln {

class Buffer {
public:
    Buffer() = default;

    // An owning buffer of the given shape.
    Buffer(std::vector<int64_t> shape, Type dtype = f32) : Buffer(std::move(shape), dtype, true) {}

    // An owning buffer whose elements the caller writes next, so they are not zeroed first (only the
    // padding after them is): an importer filling tens of MiB of weights saves a pass over them.
    static Buffer uninitialized(std::vector<int64_t> shape, Type dtype = f32) {
        return Buffer(std::move(shape), dtype, false);
    }

    // A borrowing view of memory owned elsewhere; strides default to row-major.
    Buffer(void* data, std::vector<int64_t> shape, Type dtype, std::vector<int64_t> strides = {})
            : data_(data), dtype_(dtype), shape_(std::move(shape)), strides_(std::move(strides)) {
        check_shape();
        if (strides_.empty()) strides_ = row_major(shape_);
        if (strides_.size() != shape_.size())
            detail::fail("Buffer: ", shape_.size(), " dimensions but ", strides_.size(), " strides");
    }
    // A view of memory that `owner` keeps alive: the buffer (and every copy of it) shares the ownership,
    // as an importer does with weights it already holds in memory of their own.
    Buffer(std::shared_ptr<void> owner, void* data, std::vector<int64_t> shape, Type dtype,
           std::vector<int64_t> strides = {})
            : Buffer(data, std::move(shape), dtype, std::move(strides)) {
        storage_ = std::move(owner);
    }
    template <typename T> static Buffer borrow(T* data, std::vector<int64_t> shape, std::vector<int64_t> strides = {}) {
        return Buffer(static_cast<void*>(data), std::move(shape), type_of<std::remove_const_t<T>>(),
                      std::move(strides));
    }

    void* data() const { return data_; }
    template <typename T> T* data_as() const {
        if (type_of<T>() != dtype_)
            detail::fail("Buffer::data_as: the buffer holds ", dtype_.str(), ", not ", type_of<T>().str());
        return static_cast<T*>(data_);
    }
    Type dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    const std::vector<int64_t>& strides() const { return strides_; }
    size_t ndim() const { return shape_.size(); }
    int64_t dim(size_t i) const { return shape_.at(i); }
    int64_t size() const { return std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<>()); }
    bool owning() const { return storage_ != nullptr; }
    bool is_contiguous() const { return strides_ == row_major(shape_); }

    template <typename T, typename... Idx> T& at(Idx... idx) const {
        static_assert(sizeof...(Idx) > 0);
        const int64_t i[] = {static_cast<int64_t>(idx)...};
        if (sizeof...(Idx) != shape_.size())
            detail::fail("Buffer::at: ", shape_.size(), " dimensions but ", sizeof...(Idx), " indices");
        int64_t off = 0;
        for (size_t d = 0; d < sizeof...(Idx); ++d) {
            if (i[d] < 0 || i[d] >= shape_[d])
                detail::fail("Buffer::at: index ", i[d], " is out of range for dimension ", d, " of size ", shape_[d]);
            off += i[d] * strides_[d];
        }
        return data_as<T>()[off];
    }

    static std::vector<int64_t> row_major(const std::vector<int64_t>& shape) {
        std::vector<int64_t> s(shape.size());
        int64_t st = 1;
        for (size_t d = shape.size(); d-- > 0;) {
            s[d] = st;
            st *= shape[d];
        }
        return s;
    }

private:
    Buffer(std::vector<int64_t> shape, Type dtype, bool zeroed) : dtype_(dtype), shape_(std::move(shape)) {
        check_shape();
        strides_ = row_major(shape_);
        const size_t used = static_cast<size_t>(size() * dtype.bytes());
        const size_t bytes = std::max<size_t>(64, (used + 63) / 64 * 64);
        void* p = std::aligned_alloc(64, bytes);
        if (!p) detail::fail("Buffer: could not allocate ", bytes, " bytes");
        if (zeroed)
            std::memset(p, 0, bytes);
        else
            std::memset(static_cast<char*>(p) + used, 0, bytes - used);
        storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
        data_ = p;
    }

    void check_shape() const {
        if (!dtype_.is_scalar() || dtype_.is_handle())
            detail::fail("Buffer: element type ", dtype_.str(), " is not a scalar type");
        for (auto d : shape_)
            if (d < 0) detail::fail("Buffer: negative dimension ", d);
    }

    std::shared_ptr<void> storage_;
    void* data_ = nullptr;
    Type dtype_ = f32;
    std::vector<int64_t> shape_, strides_;
};

}  // namespace kiln
