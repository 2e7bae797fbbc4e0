"""ONNX Runtime's latency on a model directory of tests/graph/make_models.py, for the demo's comparison.

ort_latency.py MODEL_DIR RUNS: prints "threads median_ms" for 1 and 2 intra-op threads, with ORT's default
graph optimisations, on the directory's input_0.npy.
"""
import sys
import time

import numpy as np
import onnxruntime as ort

model_dir, runs = sys.argv[1], int(sys.argv[2])
x = np.load(f"{model_dir}/input_0.npy")
for threads in (1, 2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(f"{model_dir}/model.onnx", so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(5):
        sess.run(None, {name: x})
    t = []
    for _ in range(runs):
        a = time.perf_counter()
        sess.run(None, {name: x})
        t.append((time.perf_counter() - a) * 1e3)
    print(threads, sorted(t)[len(t) // 2])
