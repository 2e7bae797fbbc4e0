"""kiln against ONNX Runtime on one model, in alternating rounds, so both see the same machine.

compare_ort.py KILN MODEL_DIR [--threads T] [--rounds R] [--runs N] [--opt-level L]

MODEL_DIR is a directory of tests/graph/make_models.py (model.onnx, input_0.npy). KILN is the `kiln`
command: it compiles the model once and, with `bench --rounds-on-stdin`, times a round of N runs each time
this script asks. Each round times N runs of ONNX Runtime (its default graph optimisations,
intra_op_num_threads = T) and N of kiln, the order swapped every round, and records both medians. On a
shared VM the machine's speed drifts by 10% or more for seconds at a time; rounds a second apart see the
same drift, so their ratio is fair where two separate runs minutes apart are not.
"""
import argparse
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("kiln")
p.add_argument("model_dir")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--rounds", type=int, default=20)
p.add_argument("--runs", type=int, default=30)
p.add_argument("--opt-level", type=int, default=3)
a = p.parse_args()

x = np.load(f"{a.model_dir}/input_0.npy")
so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
sess = ort.InferenceSession(f"{a.model_dir}/model.onnx", so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
for _ in range(5):
    sess.run(None, {name: x})


def ort_round():
    t = []
    for _ in range(a.runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        t.append((time.perf_counter() - start) * 1e3)
    return statistics.median(t)


kiln = subprocess.Popen(
    [a.kiln, "bench", f"{a.model_dir}/model.onnx", "--input", f"{name}={a.model_dir}/input_0.npy",
     "--threads", str(a.threads), "--opt-level", str(a.opt_level), "--runs", str(a.runs), "--rounds-on-stdin"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
compile_line = ""
for line in kiln.stdout:
    if line.startswith("compile "):
        compile_line = line.strip()
    if line.startswith("rounds"):
        break
else:
    raise SystemExit(f"{a.kiln} exited before its first round (exit code {kiln.wait()})")


def kiln_round():
    kiln.stdin.write("\n")
    kiln.stdin.flush()
    for line in kiln.stdout:
        if line.startswith("round "):
            return float(line.split()[2])
    raise SystemExit(f"{a.kiln} exited in the middle of a round (exit code {kiln.wait()})")


print(f"{a.model_dir}: {a.threads} thread(s), {a.rounds} rounds of {a.runs} runs each, kiln opt level {a.opt_level}")
print(f"kiln {compile_line}")
print("round  kiln ms  ORT ms  ORT/kiln")
pairs = []
for r in range(a.rounds):
    if r % 2 == 0:
        o, k = ort_round(), kiln_round()
    else:
        k, o = kiln_round(), ort_round()
    pairs.append((k, o))
    print(f"{r + 1:5d}  {k:7.2f}  {o:6.2f}  {o / k:7.3f}x")
kiln.stdin.close()
kiln.wait()

ks, os_ = [k for k, _ in pairs], [o for _, o in pairs]
ratios = sorted(o / k for k, o in pairs)
print(f"median   kiln {statistics.median(ks):.2f} ms, ONNX Runtime {statistics.median(os_):.2f} ms; "
      f"per-round speed-up median {statistics.median(ratios):.3f}x (range {ratios[0]:.3f}-{ratios[-1]:.3f}); "
      f"kiln faster in {sum(o > k for k, o in pairs)} of {len(pairs)} rounds")
