// conv2d, f32, batch 1, bias and ReLU fused: the eleven distinct convolution layers of ResNet-18 and
// their sum as the network runs them, kiln::nn::conv2d_nchwc with its default schedule beside oneDNN
// (when libdnnl-dev is present), one and two threads. Both sides keep activations in their blocked
// layouts and pack the weights once, outside the timed loop, as an inference engine does; kiln's time
// includes the zero padding of the input, which oneDNN does inside its kernel. Names differ only in the
// library word: conv2d/kiln/ic64_oc64_hw56_k3_s1/1t, conv2d/onednn/ic64_oc64_hw56_k3_s1/1t.
//
//   bash scripts/bench.sh conv            (or ./build/bench/bench_conv [--benchmark_filter=...])
#include <kiln/build.hpp>
#include <kiln/nn.hpp>

#include <random>

#include "bench_common.hpp"

#if KILN_BENCH_HAVE_ONEDNN
#include <dnnl.hpp>
#endif

namespace {

// One layer, with the number of times ResNet-18 runs it (layers sharing a shape are timed once).
struct Layer {
    int ic, oc, hw, k, stride, pad, count;
    int out_hw() const { return (hw + 2 * pad - k) / stride + 1; }
    double flops() const { return 2.0 * oc * out_hw() * out_hw() * ic * k * k; }
    std::string str() const {
        return "ic" + std::to_string(ic) + "_oc" + std::to_string(oc) + "_hw" + std::to_string(hw) + "_k" +
               std::to_string(k) + "_s" + std::to_string(stride);
    }
};

// From ../shared/peers/conv_resnet18_onednn.cpp.
const std::vector<Layer> kResNet18 = {
        {3, 64, 224, 7, 2, 3, 1},   {64, 64, 56, 3, 1, 1, 4},   {64, 128, 56, 3, 2, 1, 1},  {128, 128, 28, 3, 1, 1, 3},
        {64, 128, 56, 1, 2, 0, 1},  {128, 256, 28, 3, 2, 1, 1}, {256, 256, 14, 3, 1, 1, 3}, {128, 256, 28, 1, 2, 0, 1},
        {256, 512, 14, 3, 2, 1, 1}, {512, 512, 7, 3, 1, 1, 3},  {256, 512, 14, 1, 2, 0, 1}};

void fill_random(float* p, size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    for (size_t i = 0; i < n; ++i) p[i] = d(rng);
}

std::vector<int64_t> const_shape(const kiln::Tensor& t) {
    std::vector<int64_t> s;
    for (auto& e : t.shape()) s.push_back(*kiln::as_const_int(e));
    return s;
}

// A layer compiled by kiln, with its operands: blocked data, packed weight, bias, blocked output.
struct KilnLayer {
    kiln::Kernel run;
    kiln::Buffer x, w, b, y;

    explicit KilnLayer(const Layer& l) {
        kiln::nn::Conv2dOptions opt{
                .stride = {l.stride, l.stride}, .padding = {l.pad, l.pad, l.pad, l.pad}, .out_channels = l.oc};
        const kiln::nn::Conv2dLayout layout = kiln::nn::conv2d_layout(l.ic, l.oc, 1);
        const int cb = layout.data_block;
        auto weight = kiln::placeholder({l.oc, l.ic, l.k, l.k}, kiln::f32, "w");
        kiln::Tensor packed = kiln::nn::pack_conv2d_weight(weight, l.ic, opt);
        kiln::Schedule ps(packed);
        auto pack = kiln::build(ps, {weight, packed});

        auto data = kiln::placeholder({1, (l.ic + cb - 1) / cb, l.hw, l.hw, cb}, kiln::f32, "x");
        auto wp = kiln::placeholder(packed.shape(), kiln::f32, "wp");
        auto bias = kiln::placeholder({l.oc}, kiln::f32, "b");
        opt.bias = bias;
        kiln::Tensor conv = kiln::nn::conv2d_nchwc(data, wp, l.ic, opt);
        kiln::Tensor out = kiln::compute(
                conv.shape(),
                [&](kiln::Expr n, kiln::Expr c, kiln::Expr i, kiln::Expr j, kiln::Expr v) {
                    return kiln::max(conv(n, c, i, j, v), 0.0f);
                },
                "relu");
        kiln::Schedule s(out);
        kiln::nn::schedule_conv2d(s, out);
        run = kiln::build(s, {data, wp, bias, out});

        x = kiln::Buffer(const_shape(data));
        w = kiln::Buffer(const_shape(wp));
        b = kiln::Buffer({l.oc});
        y = kiln::Buffer(const_shape(out));
        kiln::Buffer raw({l.oc, l.ic, l.k, l.k});
        fill_random(x.data_as<float>(), x.size(), 1);
        fill_random(raw.data_as<float>(), raw.size(), 2);
        fill_random(b.data_as<float>(), b.size(), 3);
        pack(raw, w);
    }
    void operator()() { run(x, w, b, y); }
};

#if KILN_BENCH_HAVE_ONEDNN
// The peer program's setup: formats chosen by oneDNN (blocked), bias and ReLU as a post-op.
struct OnednnLayer {
    dnnl::engine eng{dnnl::engine::kind::cpu, 0};
    dnnl::stream st{eng};
    dnnl::convolution_forward conv;
    dnnl::memory s, w, d, b;

    explicit OnednnLayer(const Layer& l) {
        using namespace dnnl;
        const int oh = l.out_hw();
        memory::dims src = {1, l.ic, l.hw, l.hw}, wei = {l.oc, l.ic, l.k, l.k}, dst = {1, l.oc, oh, oh}, bias = {l.oc};
        auto sd = memory::desc(src, memory::data_type::f32, memory::format_tag::any);
        auto wd = memory::desc(wei, memory::data_type::f32, memory::format_tag::any);
        auto dd = memory::desc(dst, memory::data_type::f32, memory::format_tag::any);
        auto bd = memory::desc(bias, memory::data_type::f32, memory::format_tag::a);
        post_ops po;
        po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
        primitive_attr attr;
        attr.set_post_ops(po);
        auto cd = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, sd, wd, bd, dd,
                                            {l.stride, l.stride}, {l.pad, l.pad}, {l.pad, l.pad});
        auto pd = convolution_forward::primitive_desc(cd, attr, eng);
        s = memory(pd.src_desc(), eng);
        w = memory(pd.weights_desc(), eng);
        d = memory(pd.dst_desc(), eng);
        b = memory(bd, eng);
        uint32_t seed = 1;
        for (auto* m : {&s, &w, &b})
            fill_random(static_cast<float*>(m->get_data_handle()), m->get_desc().get_size() / sizeof(float), seed++);
        conv = convolution_forward(pd);
    }
    void operator()() {
        conv.execute(st, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, d}});
        st.wait();
    }
};
#endif

// Times `layers` run in network order, each as many times as ResNet-18 runs it.
template <typename Impl> void run_layers(benchmark::State& state, std::vector<Layer> layers, int threads) {
    bench::set_threads(threads);
    std::vector<std::unique_ptr<Impl>> impl;
    double flops = 0;
    for (const Layer& l : layers) {
        impl.push_back(std::make_unique<Impl>(l));
        flops += l.flops() * (layers.size() > 1 ? l.count : 1);
    }
    auto once = [&] {
        for (size_t i = 0; i < layers.size(); ++i)
            for (int c = 0; c < (layers.size() > 1 ? layers[i].count : 1); ++c) (*impl[i])();
    };
    once();
    for (auto _ : state) {
        once();
        benchmark::ClobberMemory();
    }
    bench::count_flops(state, flops);
}

int register_all = [] {
    for (int threads : {1, 2}) {
        std::vector<std::pair<std::string, std::vector<Layer>>> cases;
        for (const Layer& l : kResNet18) cases.push_back({l.str(), {l}});
        cases.push_back({"resnet18_sum", kResNet18});
        for (auto& [name, layers] : cases) {
            auto add = [&](const char* lib, auto fn) {
                benchmark::RegisterBenchmark(bench::name_of("conv2d", lib, name, threads).c_str(), fn, layers, threads)
                        ->Unit(benchmark::kMillisecond)
                        ->UseRealTime();
            };
#if KILN_BENCH_HAVE_ONEDNN
            add("onednn", run_layers<OnednnLayer>);
#endif
            add("kiln", run_layers<KilnLayer>);
        }
    }
    return 0;
}();

}  // namespace

int main(int argc, char** argv) { return bench::main(argc, argv); }
