#pragma once
// The C++ face of kiln's runtime (kiln/runtime.h): a model exported by kiln, loaded and run without
// LLVM. Failures throw kiln::Error with the runtime's message.
//
//     kiln::runtime::Model model("resnet18.so");
//     model.set_input("input", pixels.data(), {1, 3, 224, 224});
//     model.run();
//     auto logits = model.output(0);   // logits.data, logits.shape
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/error.hpp"
#include "kiln/runtime.h"

namespace kiln::runtime {

class Model {
public:
    struct Output {
        const float* data;
        std::vector<int64_t> shape;
        int64_t size() const {
            int64_t n = 1;
            for (auto d : shape) n *= d;
            return n;
        }
    };

    explicit Model(const std::string& path) : m_(kiln_model_load(path.c_str(), nullptr, 0)) { check(m_ != nullptr); }

    int num_inputs() const { return count(kiln_model_num_inputs(m_.get())); }
    int num_outputs() const { return count(kiln_model_num_outputs(m_.get())); }
    std::string input_name(int i) const { return text(kiln_model_input_name(m_.get(), i)); }
    std::string output_name(int i) const { return text(kiln_model_output_name(m_.get(), i)); }
    std::string input_dtype(int i) const { return text(kiln_model_input_dtype(m_.get(), i)); }
    std::vector<int64_t> input_shape(int i) const {
        int ndim = 0;
        const int64_t* s = kiln_model_input_shape(m_.get(), i, &ndim);
        check(s != nullptr);
        return std::vector<int64_t>(s, s + ndim);
    }

    void set_input(const std::string& name, const float* data, const std::vector<int64_t>& shape) {
        check(kiln_model_set_input(m_.get(), name.c_str(), data, shape.data(), static_cast<int>(shape.size())) == 0);
    }
    void set_input_bytes(const std::string& name, const void* data, size_t bytes) {
        check(kiln_model_set_input_bytes(m_.get(), name.c_str(), data, bytes) == 0);
    }
    void run() { check(kiln_model_run(m_.get()) == 0); }
    // A float32 output, valid until the next run().
    Output output(int i) const {
        const float* data = nullptr;
        const int64_t* shape = nullptr;
        int ndim = 0;
        check(kiln_model_output(m_.get(), i, &data, &shape, &ndim) == 0);
        return {data, std::vector<int64_t>(shape, shape + ndim)};
    }
    void set_threads(int threads) { check(kiln_model_set_threads(m_.get(), threads) == 0); }

private:
    struct Free {
        void operator()(kiln_model* m) const { kiln_model_free(m); }
    };
    static void check(bool ok) {
        if (!ok) throw Error(kiln_last_error());
    }
    static int count(int n) {
        check(n >= 0);
        return n;
    }
    static std::string text(const char* s) {
        check(s != nullptr);
        return s;
    }
    std::unique_ptr<kiln_model, Free> m_;
};

}  // namespace kiln::runtime
