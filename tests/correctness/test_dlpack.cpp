// kiln::Buffer to and from DLPack's DLManagedTensor (kiln/runtime/dlpack.hpp): no copies, the owner's
// memory kept alive, strides and element types carried, and what kiln cannot take refused with a message.
#include <kiln/runtime/dlpack.hpp>

#include "helpers.hpp"

using namespace kiln;

namespace {

// A tensor as another framework would hand it over: its own memory, shape and deleter, which counts calls.
struct Foreign {
    std::vector<float> data;
    std::vector<int64_t> shape, strides;
    DLManagedTensor managed{};
    int* deleted;
};

DLManagedTensor* foreign_tensor(std::vector<int64_t> shape, std::vector<int64_t> strides, int* deleted,
                                DLDataType dtype = {kDLFloat, 32, 1}) {
    auto* f = new Foreign{};
    int64_t span = 1;
    for (size_t d = 0; d < shape.size(); ++d) span += (shape[d] - 1) * (strides.empty() ? 1 : strides[d]);
    f->data.resize(static_cast<size_t>(std::max<int64_t>(span, shape.empty() ? 1 : 0) + 64));
    for (size_t i = 0; i < f->data.size(); ++i) f->data[i] = static_cast<float>(i);
    f->shape = std::move(shape);
    f->strides = std::move(strides);
    f->deleted = deleted;
    DLTensor& t = f->managed.dl_tensor;
    t.data = f->data.data();
    t.device = {kDLCPU, 0};
    t.ndim = static_cast<int32_t>(f->shape.size());
    t.dtype = dtype;
    t.shape = f->shape.data();
    t.strides = f->strides.empty() ? nullptr : f->strides.data();
    f->managed.manager_ctx = f;
    f->managed.deleter = [](DLManagedTensor* self) {
        auto* owner = static_cast<Foreign*>(self->manager_ctx);
        ++*owner->deleted;
        delete owner;
    };
    return &f->managed;
}

}  // namespace

TEST_CASE("dlpack: a foreign tensor becomes a buffer over its memory, and its deleter runs with the last copy") {
    int deleted = 0;
    DLManagedTensor* t = foreign_tensor({3, 5}, {}, &deleted);
    const float* memory = static_cast<const float*>(t->dl_tensor.data);
    {
        Buffer b = from_dlpack(t);
        CHECK(b.data() == memory);
        CHECK(b.shape() == std::vector<int64_t>{3, 5});
        CHECK(b.is_contiguous());
        CHECK(b.dtype() == f32);
        Buffer copy = b;
        b = Buffer();
        CHECK(deleted == 0);
        CHECK(copy.at<float>(2, 4) == 14.f);
    }
    CHECK(deleted == 1);
}

TEST_CASE("dlpack: strides and a byte offset are kept, and a kernel reads the strided tensor in place") {
    int deleted = 0;
    // A transposed 4 x 7 view of a 7 x 4 row-major array, starting one element in.
    DLManagedTensor* t = foreign_tensor({4, 7}, {1, 4}, &deleted);
    t->dl_tensor.byte_offset = sizeof(float);
    Buffer x = from_dlpack(t);
    CHECK_FALSE(x.is_contiguous());
    CHECK(x.strides() == std::vector<int64_t>{1, 4});
    CHECK(x.at<float>(2, 3) == 1 + 2 + 3 * 4);

    auto X = placeholder({4, 7}, f32, "X");
    auto Y = compute(
            {4, 7}, [&](Expr i, Expr j) { return X(i, j) * 2.0f; }, "Y");
    Schedule s(Y);
    auto f = build(s, {X, Y});
    Buffer y({4, 7});
    f(x, y);
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 7; ++j) CHECK(y.at<float>(i, j) == 2.f * static_cast<float>(1 + i + 4 * j));
}

TEST_CASE("dlpack: a buffer goes out without a copy and stays alive until the taker's deleter") {
    Buffer b = test::random_buffer({6, 9}, 3);
    const float want = b.at<float>(5, 8);
    DLManagedTensor* t = to_dlpack(b);
    b = Buffer();  // the tensor alone holds the memory now
    CHECK(t->dl_tensor.ndim == 2);
    CHECK(t->dl_tensor.shape[0] == 6);
    CHECK(t->dl_tensor.shape[1] == 9);
    CHECK(t->dl_tensor.strides[0] == 9);
    CHECK(t->dl_tensor.dtype.code == kDLFloat);
    CHECK(t->dl_tensor.dtype.bits == 32);
    CHECK(t->dl_tensor.device.device_type == kDLCPU);
    CHECK(static_cast<float*>(t->dl_tensor.data)[5 * 9 + 8] == want);
    // Round trip: kiln takes its own tensor back, still without a copy.
    const void* memory = t->dl_tensor.data;
    Buffer back = from_dlpack(t);
    CHECK(back.data() == memory);
    CHECK(back.at<float>(5, 8) == want);
}

TEST_CASE("dlpack: element types both ways") {
    for (Type dt : {boolean, i8, i16, i32, i64, u8, u32, f16, f32, f64}) {
        Buffer b({2}, dt);
        Buffer back = from_dlpack(to_dlpack(b));
        CHECK(back.dtype() == dt);
        CHECK(back.data() == b.data());
    }
}

TEST_CASE("dlpack errors: what a buffer cannot hold is refused, and the tensor is still released") {
    int deleted = 0;
    DLManagedTensor* gpu = foreign_tensor({2}, {}, &deleted);
    gpu->dl_tensor.device = {kDLCUDA, 0};
    CHECK(test::error_of([&] { from_dlpack(gpu); }) ==
          "from_dlpack: the tensor is on device type 2; kiln buffers hold host memory, so copy it to the CPU first "
          "(e.g. tensor.cpu() in PyTorch)");
    CHECK(deleted == 1);
    CHECK(test::error_of([&] {
              from_dlpack(foreign_tensor({2}, {}, &deleted, {kDLFloat, 32, 4}));
          }) == "from_dlpack: the tensor has vector elements of 4 lanes; kiln buffers hold one lane per element");
    CHECK(test::error_of([&] {
              from_dlpack(foreign_tensor({2}, {}, &deleted, {kDLBfloat, 16, 1}));
          }) ==
          "from_dlpack: DLPack element type (code 4, 16 bits) has no kiln equivalent; kiln holds bool, i8..i64, "
          "u8..u64, f16, f32 and f64");
    CHECK(deleted == 3);
    CHECK(test::error_of([] { from_dlpack(nullptr); }) == "from_dlpack: the tensor is null");
}
