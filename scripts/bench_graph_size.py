"""How compile time grows with a model's size: chains of N nodes (a 1x1 convolution, then Add of a
constant, Relu, Mul of a constant, repeated, on a [1, 16, 8, 8] tensor; every node has weights of its
own), compiled by `kiln bench` with an empty disk cache. Prints, per N, the compile time and its split,
and the time per node; linear growth keeps the last column flat.

    build/pyenv/bin/python scripts/bench_graph_size.py --kiln build/tools/kiln --sizes 1000,2500,5000,10000
"""
import argparse
import os
import re
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def chain(n, path):
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = "x"
    for k in range(n):
        y = f"v{k}"
        kind = k % 4
        if kind == 0:
            w = f"w{k}"
            inits.append(numpy_helper.from_array((rng.standard_normal((16, 16, 1, 1)) * 0.25).astype(np.float32), w))
            nodes.append(helper.make_node("Conv", [x, w], [y]))
        elif kind in (1, 3):
            c = f"c{k}"
            inits.append(numpy_helper.from_array(rng.standard_normal((1, 16, 1, 1)).astype(np.float32) * 0.1, c))
            nodes.append(helper.make_node("Add" if kind == 1 else "Mul", [x, c], [y]))
        else:
            nodes.append(helper.make_node("Relu", [x], [y]))
        x = y
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 16, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default="build/tools/kiln")
    ap.add_argument("--sizes", default="1000,2500,5000,10000")
    ap.add_argument("--opt-level", default="3")
    a = ap.parse_args()
    print("| nodes | compile ms | import | passes | lowering | LLVM | distinct kernels | ms per node |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in a.sizes.split(",")]:
            path = os.path.join(tmp, f"chain{n}.onnx")
            chain(n, path)
            env = dict(os.environ, KILN_CACHE_DIR=os.path.join(tmp, f"cache{n}"))
            out = subprocess.run([a.kiln, "bench", path, "--runs", "1", "--warmup", "0", "--threads", "1",
                                  "--opt-level", a.opt_level], capture_output=True, text=True, env=env, check=True).stdout
            m = re.search(r"compile\s+(\d+) ms = import (\d+) \+ passes (\d+) \+ lowering (\d+) \+ LLVM (\d+).*?of (\d+) kernels", out)
            total, imp, passes, low, llvm, kernels = (int(v) for v in m.groups())
            print(f"| {n} | {total} | {imp} | {passes} | {low} | {llvm} | {kernels} | {total / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
