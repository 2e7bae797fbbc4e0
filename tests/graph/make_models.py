#!/usr/bin/env python3
"""Builds the ONNX models the graph tests run, with onnx.helper and random weights, and the reference
outputs from ONNX Runtime (default graph optimisations) for random inputs.

    python3 make_models.py OUT_DIR

For every case OUT_DIR/<case>/ holds model.onnx, input_<k>.npy and output_<k>.npy; OUT_DIR/cases.txt lists
the cases with their tolerance. Odd shapes on purpose: channels 3, 5, 17; spatial sizes 1, 7, 13.
"""
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1234)
F = TensorProto.FLOAT


def rand(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


class Case:
    def __init__(self, name, opset=17, tol=1e-4, reference=None):
        # reference: feeds -> outputs, for the few cases where ONNX Runtime's answer is not the one kiln holds to
        self.name, self.opset, self.tol, self.reference = name, opset, tol, reference
        self.nodes, self.inits, self.inputs, self.feeds, self.outputs = [], [], [], {}, []
        self.count = 0

    def input(self, name, array, elem=F):
        self.inputs.append(helper.make_tensor_value_info(name, elem, array.shape))
        self.feeds[name] = array
        return name

    def const(self, array, name=None):
        name = name or f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        self.count += 1
        outs = [f"{op_type.lower()}{self.count}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self.count}", **attrs))
        return outs[0] if n_out == 1 else outs

    def output(self, *names):
        self.outputs.extend(names)


def save(case, out_dir):
    outs = [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in case.outputs]
    graph = helper.make_graph(case.nodes, case.name, case.inputs, outs, case.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    d = os.path.join(out_dir, case.name)
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(d, "model.onnx"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    res = case.reference(case.feeds) if case.reference else sess.run(None, case.feeds)
    for k, inp in enumerate(case.inputs):
        np.save(os.path.join(d, f"input_{k}.npy"), case.feeds[inp.name])
    for k, r in enumerate(res):
        np.save(os.path.join(d, f"output_{k}.npy"), np.ascontiguousarray(r))
    return f"{case.name} {case.tol}"


def unary_cases():
    ops = {
        "Relu": {}, "LeakyRelu": {"alpha": 0.13}, "Sigmoid": {}, "Tanh": {}, "Erf": {}, "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
        "HardSwish": {}, "Exp": {}, "Neg": {}, "Abs": {}, "Identity": {}, "Floor": {}, "Ceil": {},
    }
    for op, attrs in ops.items():
        c = Case(f"unary_{op}")
        x = c.input("x", rand(2, 5, 7, 3, lo=-3, hi=3))
        c.output(c.op(op, [x], **attrs))
        yield c
    for op in ["Sqrt", "Log", "Reciprocal"]:
        c = Case(f"unary_{op}")
        x = c.input("x", rand(3, 17, lo=0.1, hi=4))
        c.output(c.op(op, [x]))
        yield c
    c = Case("unary_Mish", opset=18)
    c.output(c.op("Mish", [c.input("x", rand(5, 13, lo=-5, hi=5))]))
    yield c
    for approx in ["none", "tanh"]:
        c = Case(f"unary_Gelu_{approx}", opset=20)
        c.output(c.op("Gelu", [c.input("x", rand(4, 13, lo=-4, hi=4))], approximate=approx))
        yield c
    c = Case("unary_Clip")
    x = c.input("x", rand(3, 7, 5, lo=-2, hi=2))
    c.output(c.op("Clip", [x, c.const(np.float32(-0.5)), c.const(np.float32(0.7))]))
    yield c
    c = Case("unary_Clip_min_only")
    x = c.input("x", rand(13, lo=-2, hi=2))
    c.output(c.op("Clip", [x, c.const(np.float32(0.1))]))
    yield c
    c = Case("unary_Dropout")
    c.output(c.op("Dropout", [c.input("x", rand(3, 5))]))
    yield c
    c = Case("unary_Cast")
    x = c.input("x", rand(3, 5, lo=-9, hi=9))
    c.output(c.op("Cast", [c.op("Cast", [x], to=TensorProto.INT64)], to=TensorProto.FLOAT))
    yield c


def binary_cases():
    shapes = [((2, 5, 7), (2, 5, 7)), ((2, 5, 7), (7,)), ((3, 1, 13), (1, 5, 1)), ((5, 1), ()), ((1,), (3, 17))]
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"]:
        for k, (sa, sb) in enumerate(shapes):
            c = Case(f"binary_{op}_{k}")
            b = rand(*sb, lo=0.5, hi=2) if op == "Div" else rand(*sb)
            c.output(c.op(op, [c.input("a", rand(*sa)), c.input("b", b.reshape(sb))]))
            yield c
    c = Case("binary_Pow")
    c.output(c.op("Pow", [c.input("a", rand(3, 7, lo=0.1, hi=2)), c.input("b", rand(7, lo=-2, hi=2))]))
    yield c
    c = Case("binary_Pow_square")
    c.output(c.op("Pow", [c.input("a", rand(3, 7)), c.const(np.float32(2.0))]))
    yield c
    c = Case("where_broadcast")
    a, b = c.input("a", rand(3, 1, 7)), c.input("b", rand(5, 1))
    cond = c.op("Greater", [a, c.const(np.float32(0.0))])
    c.output(c.op("Where", [cond, a, b]))
    yield c


def special(*shape, lo=-3.0, hi=3.0):
    """Random values with NaN, +inf and -inf at fixed places among them."""
    a = rand(*shape, lo=lo, hi=hi)
    flat = a.reshape(-1)
    flat[1::7] = np.nan
    flat[3::11] = np.inf
    flat[5::13] = -np.inf
    return a


def special_value_cases():
    # NaN and infinities through every kind of operator, held to ONNX Runtime's results (NaN where it gives NaN).
    # Where ONNX Runtime 1.31 departs from IEEE 754, kiln follows IEEE and the reference is numpy's: its erf gives 1
    # for NaN and its sqrt NaN for +inf; its ReduceMax and MaxPool skip NaN, where IEEE 754-2019's maximum (and
    # PyTorch's max) give NaN, as kiln's Max, Min, Relu and Clip do and as ONNX Runtime's own Max and Relu do.
    ieee = {
        "Erf": lambda f: [np.vectorize(math.erf, otypes=[np.float32])(f["x"])],
        "Sqrt": lambda f: [np.sqrt(f["x"])],
    }
    for op in ["Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Neg", "Abs", "Floor", "Ceil", "Sqrt", "Log", "Reciprocal",
               "HardSwish"]:
        c = Case(f"special_{op}", reference=ieee.get(op))
        c.output(c.op(op, [c.input("x", special(3, 29))]))
        yield c
    c = Case("special_LeakyRelu")
    c.output(c.op("LeakyRelu", [c.input("x", special(3, 29))], alpha=0.1))
    yield c
    c = Case("special_Gelu", opset=20)
    c.output(c.op("Gelu", [c.input("x", special(3, 29))]))
    yield c
    c = Case("special_Clip")
    c.output(c.op("Clip", [c.input("x", special(3, 29)), c.const(np.float32(-1)), c.const(np.float32(1))]))
    yield c
    for op in ["Add", "Mul", "Div", "Max", "Min", "Pow"]:
        c = Case(f"special_{op}")
        c.output(c.op(op, [c.input("a", special(5, 17)), c.input("b", special(17, lo=0.5, hi=2))]))
        yield c
    for op, attrs in [("Softmax", {"axis": -1}), ("ReduceMax", {"axes": [1]}), ("ReduceSum", {"axes": [1]}),
                      ("ReduceMean", {"axes": [1]})]:
        c = Case(f"special_{op}", opset=13 if op != "ReduceSum" else 12,
                 reference=(lambda f: [np.max(f["x"], axis=1)]) if op == "ReduceMax" else None)
        c.output(c.op(op, [c.input("x", special(7, 19))], **attrs))
        yield c
    c = Case("special_MatMul")
    c.output(c.op("MatMul", [c.input("a", special(7, 19)), c.const(rand(19, 5))]))
    yield c
    c = Case("special_Conv")
    c.output(c.op("Conv", [c.input("x", special(1, 3, 9, 9)), c.const(rand(4, 3, 3, 3))], pads=[1, 1, 1, 1]))
    yield c
    def max_pool_3x3_s2(f):
        x = f["x"]
        return [np.stack([np.stack([x[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3)) for j in range(4)], -1)
                          for i in range(4)], -2)]

    for op in ["MaxPool", "AveragePool"]:
        c = Case(f"special_{op}", reference=max_pool_3x3_s2 if op == "MaxPool" else None)
        c.output(c.op(op, [c.input("x", special(1, 3, 9, 9))], kernel_shape=[3, 3], strides=[2, 2]))
        yield c
    c = Case("special_GlobalAveragePool")
    c.output(c.op("GlobalAveragePool", [c.input("x", special(1, 5, 7, 7))]))
    yield c
    c = Case("special_LayerNormalization")
    c.output(c.op("LayerNormalization", [c.input("x", special(5, 19)), c.const(rand(19)), c.const(rand(19))], axis=-1))
    yield c


def nn_cases():
    # Conv: odd channels and sizes, stride, padding, dilation, groups, depthwise, bias, auto_pad.
    convs = [
        ("plain", (1, 3, 13, 13), (5, 3, 3, 3), {}),
        ("pad_stride", (2, 5, 13, 7), (17, 5, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
        ("asym_pad_dil", (1, 17, 7, 13), (5, 17, 3, 2), {"pads": [0, 1, 2, 0], "dilations": [2, 1]}),
        ("groups", (1, 6, 7, 7), (9, 2, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
        ("depthwise", (1, 17, 13, 13), (17, 1, 3, 3), {"group": 17, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
        ("same_upper", (1, 3, 7, 7), (5, 3, 4, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        ("one_pixel", (1, 5, 1, 1), (3, 5, 1, 1), {}),
        ("wide", (1, 32, 14, 14), (48, 32, 3, 3), {"pads": [1, 1, 1, 1]}),
    ]
    for name, xs, ws, attrs in convs:
        for bias in (False, True):
            c = Case(f"conv_{name}{'_bias' if bias else ''}")
            ins = [c.input("x", rand(*xs)), c.const(rand(*ws))]
            if bias:
                ins.append(c.const(rand(ws[0])))
            c.output(c.op("Conv", ins, **attrs))
            yield c
    for name, xs, ws, attrs in [("plain", (1, 5, 7, 7), (5, 3, 3, 3), {}), ("stride_pad", (1, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
                                ("groups", (1, 4, 5, 5), (4, 2, 2, 2), {"group": 2, "strides": [2, 2]})]:
        c = Case(f"convtranspose_{name}")
        c.output(c.op("ConvTranspose", [c.input("x", rand(*xs)), c.const(rand(*ws)), c.const(rand(ws[1] * attrs.get("group", 1)))], **attrs))
        yield c
    for name, (m, k, n), attrs, cshape in [("nn", (7, 13, 5), {}, (5,)), ("tb", (3, 17, 33), {"transB": 1}, (33,)),
                                          ("ta_alpha", (5, 7, 3), {"transA": 1, "alpha": 0.5, "beta": 2.0}, (5, 3)),
                                          ("row", (1, 64, 10), {"transB": 1}, (1, 10))]:
        c = Case(f"gemm_{name}")
        a = rand(k, m) if attrs.get("transA") else rand(m, k)
        b = rand(n, k) if attrs.get("transB") else rand(k, n)
        c.output(c.op("Gemm", [c.input("a", a), c.const(b), c.const(rand(*cshape))], **attrs))
        yield c
    for name, sa, sb in [("2d", (7, 13), (13, 5)), ("3d_2d", (2, 5, 17), (17, 3)), ("batched", (2, 3, 5, 7), (2, 3, 7, 4)),
                         ("batched_3d", (6, 37, 19), (6, 19, 45)), ("batched_3d_small", (3, 5, 7), (3, 7, 4)),
                         ("broadcast", (3, 5, 7), (1, 7, 2)), ("vec_mat", (7,), (7, 3)), ("mat_vec", (2, 5, 7), (7,))]:
        c = Case(f"matmul_{name}")
        c.output(c.op("MatMul", [c.input("a", rand(*sa)), c.input("b", rand(*sb))]))
        yield c
    # ConvNeXt's pointwise layers: a rank-4 activation by a constant weight, with its bias. Tiles of 8 rows
    # straddle the image rows (11 pixels each).
    c = Case("matmul_4d_const_bias")
    c.output(c.op("Add", [c.op("MatMul", [c.input("a", rand(1, 13, 11, 20)), c.const(rand(20, 37))]), c.const(rand(37))]))
    yield c
    c = Case("batchnorm")
    x = c.input("x", rand(2, 5, 7, 3))
    c.output(c.op("BatchNormalization", [x, c.const(rand(5)), c.const(rand(5)), c.const(rand(5)), c.const(rand(5, lo=0.5, hi=2))], epsilon=1e-3))
    yield c
    c = Case("layernorm")
    x = c.input("x", rand(2, 7, 13))
    c.output(c.op("LayerNormalization", [x, c.const(rand(13)), c.const(rand(13))], epsilon=1e-5))
    yield c
    c = Case("layernorm_axis1")
    x = c.input("x", rand(3, 5, 7))
    c.output(c.op("LayerNormalization", [x, c.const(rand(5, 7))], axis=1))
    yield c
    c = Case("instancenorm")
    c.output(c.op("InstanceNormalization", [c.input("x", rand(2, 5, 7, 3)), c.const(rand(5)), c.const(rand(5))]))
    yield c
    pools = [
        ("max_basic", "MaxPool", (1, 3, 13, 13), {"kernel_shape": [3, 3], "strides": [2, 2]}),
        ("max_pad_ceil", "MaxPool", (1, 5, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
        ("max_dil", "MaxPool", (1, 2, 13, 7), {"kernel_shape": [2, 2], "dilations": [2, 2]}),
        ("max_1d", "MaxPool", (2, 3, 13), {"kernel_shape": [3], "strides": [2]}),
        ("avg_basic", "AveragePool", (1, 3, 13, 13), {"kernel_shape": [3, 3], "strides": [2, 2]}),
        ("avg_pad", "AveragePool", (1, 5, 7, 7), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
        ("avg_pad_incl", "AveragePool", (1, 5, 7, 7), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
        ("avg_ceil", "AveragePool", (1, 2, 7, 7), {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
        ("max_same", "MaxPool", (1, 3, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ]
    for name, op, xs, attrs in pools:
        c = Case(f"pool_{name}", opset=19 if "dilations" in attrs and op == "AveragePool" else 17)
        c.output(c.op(op, [c.input("x", rand(*xs))], **attrs))
        yield c
    for op in ["GlobalAveragePool", "GlobalMaxPool"]:
        c = Case(f"pool_{op}")
        c.output(c.op(op, [c.input("x", rand(1, 17, 7, 13))]))
        yield c
    for op in ["Softmax", "LogSoftmax"]:
        for axis in (-1, 1):
            c = Case(f"{op.lower()}_axis{axis}")
            c.output(c.op(op, [c.input("x", rand(3, 5, 7, lo=-4, hi=4))], axis=axis))
            yield c
        c = Case(f"{op.lower()}_opset11", opset=11)
        c.output(c.op(op, [c.input("x", rand(3, 5, 7, lo=-4, hi=4))], axis=1))
        yield c


def transform_cases():
    c = Case("reshape")
    c.output(c.op("Reshape", [c.input("x", rand(2, 3, 5, 7)), c.const(np.array([6, -1, 0], np.int64))]))
    yield c
    c = Case("flatten")
    c.output(c.op("Flatten", [c.input("x", rand(2, 3, 5, 7))], axis=2))
    yield c
    c = Case("transpose")
    c.output(c.op("Transpose", [c.input("x", rand(2, 3, 5, 7))], perm=[2, 0, 3, 1]))
    yield c
    c = Case("concat")
    c.output(c.op("Concat", [c.input("a", rand(2, 3, 5)), c.input("b", rand(2, 1, 5)), c.const(rand(2, 4, 5))], axis=1))
    yield c
    c = Case("split")
    outs = c.op("Split", [c.input("x", rand(3, 13)), c.const(np.array([2, 4, 7], np.int64))], n_out=3, axis=1)
    c.output(*outs)
    yield c
    c = Case("split_equal", opset=18)
    outs = c.op("Split", [c.input("x", rand(7, 5))], n_out=3, axis=0, num_outputs=3)
    c.output(*outs)
    yield c
    c = Case("slice")
    c.output(c.op("Slice", [c.input("x", rand(5, 13, 7)), c.const(np.array([1, -3], np.int64)), c.const(np.array([100, 0], np.int64)),
                            c.const(np.array([0, 1], np.int64)), c.const(np.array([2, -2], np.int64))]))
    yield c
    c = Case("squeeze_unsqueeze")
    s = c.op("Squeeze", [c.input("x", rand(3, 1, 5, 1)), c.const(np.array([1, 3], np.int64))])
    c.output(c.op("Unsqueeze", [s, c.const(np.array([0, -1], np.int64))]))
    yield c
    c = Case("gather")
    c.output(c.op("Gather", [c.input("x", rand(7, 5, 3)), c.const(np.array([[0, 6], [-1, 3]], np.int64))], axis=0))
    yield c
    c = Case("gather_axis1_input_indices")
    c.output(c.op("Gather", [c.input("x", rand(3, 13)), c.input("i", np.array([12, 0, -2, 5], np.int64), TensorProto.INT64)], axis=1))
    yield c
    for mode in ["constant", "reflect", "edge"]:
        c = Case(f"pad_{mode}")
        ins = [c.input("x", rand(2, 5, 7)), c.const(np.array([0, 1, 2, 0, 3, 1], np.int64))]
        if mode == "constant":
            ins.append(c.const(np.float32(0.25)))
        c.output(c.op("Pad", ins, mode=mode))
        yield c
    for name, mode, ctm, scales in [("nearest_up", "nearest", "asymmetric", [1, 1, 2, 3]), ("linear_up", "linear", "half_pixel", [1, 1, 2, 1.5]),
                                    ("linear_down", "linear", "align_corners", [1, 1, 0.5, 0.6]), ("nearest_hp", "nearest", "half_pixel", [1, 1, 1.7, 2.3])]:
        c = Case(f"resize_{name}")
        extra = {"nearest_mode": "floor"} if name == "nearest_up" else {}
        # align_corners with scale x length not whole is where ONNX's reference (unrounded length) and ONNX
        # Runtime (the output length) part; the conformance tests hold kiln to the reference, this case to ORT.
        shape = (1, 3, 6, 10) if ctm == "align_corners" else (1, 3, 5, 7)
        c.output(c.op("Resize", [c.input("x", rand(*shape)), "", c.const(np.array(scales, np.float32))], mode=mode,
                      coordinate_transformation_mode=ctm, **extra))
        yield c
    c = Case("expand")
    c.output(c.op("Expand", [c.input("x", rand(3, 1)), c.const(np.array([2, 3, 5], np.int64))]))
    yield c
    c = Case("shape_constantofshape")
    x = c.input("x", rand(3, 5, 7))
    shp = c.op("Shape", [x])
    filled = c.op("ConstantOfShape", [shp], value=numpy_helper.from_array(np.array([1.5], np.float32)))
    c.output(c.op("Add", [x, filled]))
    yield c
    for op in ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"]:
        for keep in (0, 1):
            c = Case(f"{op.lower()}_keep{keep}", opset=18)
            c.output(c.op(op, [c.input("x", rand(3, 5, 7)), c.const(np.array([0, 2], np.int64))], keepdims=keep))
            yield c
        c = Case(f"{op.lower()}_all", opset=18)
        c.output(c.op(op, [c.input("x", rand(3, 5, 7))], keepdims=0))
        yield c
    c = Case("reducemean_opset13", opset=13)
    c.output(c.op("ReduceMean", [c.input("x", rand(3, 5, 7))], axes=[-1]))
    yield c


# ---- whole models -------------------------------------------------------------------------------------

def conv_bn(c, x, cin, cout, k, stride, relu=True):
    w = c.const(rand(cout, cin, k, k) * np.float32(np.sqrt(2.0 / (cin * k * k))))
    y = c.op("Conv", [x, w], pads=[k // 2] * 4, strides=[stride, stride])
    y = c.op("BatchNormalization", [y, c.const(rand(cout, lo=0.5, hi=1.5)), c.const(rand(cout, lo=-0.1, hi=0.1)),
                                    c.const(rand(cout, lo=-0.1, hi=0.1)), c.const(rand(cout, lo=0.5, hi=1.5))])
    return c.op("Relu", [y]) if relu else y


def resnet18(size=224, classes=1000):
    c = Case("model_resnet18" if size == 224 else f"model_resnet18_{size}", tol=1e-4)
    x = c.input("input", rand(1, 3, size, size))
    y = conv_bn(c, x, 3, 64, 7, 2)
    y = c.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
        h = conv_bn(c, y, cin, cout, 3, stride)
        h = conv_bn(c, h, cout, cout, 3, 1, relu=False)
        sc = conv_bn(c, y, cin, cout, 1, stride, relu=False) if (stride != 1 or cin != cout) else y
        y = c.op("Relu", [c.op("Add", [h, sc])])
        cin = cout
    y = c.op("GlobalAveragePool", [y])
    y = c.op("Flatten", [y], axis=1)
    y = c.op("Gemm", [y, c.const(rand(classes, 512) * np.float32(0.05)), c.const(rand(classes))], transB=1)
    c.output(y)
    return c


def mobilenet_v2_blocks():
    c = Case("model_mobilenetv2_blocks")
    x = c.input("input", rand(1, 3, 56, 56))
    y = conv_bn(c, x, 3, 16, 3, 2)
    cin = 16
    for t, cout, stride in [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2)]:
        hid = cin * t
        h = y
        if t != 1:
            h = c.op("Clip", [conv_bn(c, h, cin, hid, 1, 1, relu=False), c.const(np.float32(0)), c.const(np.float32(6))])
        w = c.const(rand(hid, 1, 3, 3) * np.float32(0.5))
        h = c.op("Conv", [h, w], pads=[1, 1, 1, 1], strides=[stride, stride], group=hid)
        h = c.op("Clip", [h, c.const(np.float32(0)), c.const(np.float32(6))])
        h = conv_bn(c, h, hid, cout, 1, 1, relu=False)
        y = c.op("Add", [h, y]) if stride == 1 and cin == cout else h
        cin = cout
    y = c.op("GlobalAveragePool", [y])
    c.output(c.op("Flatten", [y]))
    return c


def transformer_encoder(seq=13, dim=32, heads=4, layers=2):
    c = Case("model_transformer_encoder", tol=1e-4)
    x = c.input("input", rand(1, seq, dim))
    dh = dim // heads
    for _ in range(layers):
        def proj(inp):
            return c.op("Add", [c.op("MatMul", [inp, c.const(rand(dim, dim) * np.float32(0.2))]), c.const(rand(dim) * np.float32(0.1))])

        def split_heads(t):
            t = c.op("Reshape", [t, c.const(np.array([1, seq, heads, dh], np.int64))])
            return c.op("Transpose", [t], perm=[0, 2, 1, 3])
        q, k, v = split_heads(proj(x)), split_heads(proj(x)), split_heads(proj(x))
        s = c.op("MatMul", [q, c.op("Transpose", [k], perm=[0, 1, 3, 2])])
        s = c.op("Mul", [s, c.const(np.float32(1.0 / np.sqrt(dh)))])
        p = c.op("Softmax", [s], axis=-1)
        o = c.op("Transpose", [c.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
        o = proj(c.op("Reshape", [o, c.const(np.array([1, seq, dim], np.int64))]))
        x = c.op("LayerNormalization", [c.op("Add", [x, o]), c.const(rand(dim, lo=0.5, hi=1.5)), c.const(rand(dim) * np.float32(0.1))], axis=-1)
        h = c.op("Add", [c.op("MatMul", [x, c.const(rand(dim, 4 * dim) * np.float32(0.2))]), c.const(rand(4 * dim) * np.float32(0.1))])
        h = c.op("Mul", [c.op("Mul", [h, c.const(np.float32(0.5))]),
                         c.op("Add", [c.op("Erf", [c.op("Div", [h, c.const(np.float32(np.sqrt(2.0)))])]), c.const(np.float32(1.0))])])
        h = c.op("Add", [c.op("MatMul", [h, c.const(rand(4 * dim, dim) * np.float32(0.2))]), c.const(rand(dim) * np.float32(0.1))])
        x = c.op("LayerNormalization", [c.op("Add", [x, h]), c.const(rand(dim, lo=0.5, hi=1.5)), c.const(rand(dim) * np.float32(0.1))], axis=-1)
    c.output(x)
    return c


def main():
    # make_models.py OUT_DIR [--only resnet18]: every case, or one of the whole models (the demo's).
    out_dir = sys.argv[1]
    only = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--only" else None
    os.makedirs(out_dir, exist_ok=True)
    models = {"resnet18": resnet18, "mobilenet_v2_blocks": mobilenet_v2_blocks, "transformer_encoder": transformer_encoder}
    if only:
        if only not in models:
            sys.exit(f"make_models.py: --only takes one of {', '.join(models)}, not '{only}'")
        print(save(models[only](), out_dir))
        return
    lines = []
    for gen in (unary_cases, binary_cases, nn_cases, transform_cases, special_value_cases):
        for case in gen():
            lines.append(save(case, out_dir))
    for make in models.values():
        lines.append(save(make(), out_dir))
    with open(os.path.join(out_dir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} cases in {out_dir}")


if __name__ == "__main__":
    main()
