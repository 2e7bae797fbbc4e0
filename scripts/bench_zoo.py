"""kiln against ONNX Runtime and OpenVINO on the model zoo, in alternating rounds, with the ratio table.

bench_zoo.py --kiln KILN --zoo DIR [--models a,b] [--threads 1,2] [--engines kiln,ort,openvino[,kiln_so]]
             [--rounds R] [--runs N] [--opt-level L] [--json FILE]

DIR is what scripts/make_zoo.py writes (NAME.onnx, NAME.input.npy, NAME.output.npy). For every model and
thread count, each engine is prepared once and then timed in R rounds of N runs, the engines' order rotated
every round: on a shared VM the machine's speed drifts by 10% or more for seconds at a time, and rounds a
second apart see the same drift. A round's figure is its median run; the ratio peer / kiln is taken per
round and its median reported, so above 1 means kiln is faster.

kiln is the `kiln` command (`bench --rounds-on-stdin` compiles the model once and times a round whenever
asked), checked first with `kiln run` against PyTorch's output to 1e-4 relative (of the output's largest
magnitude). ONNX Runtime: default graph optimisations, intra_op_num_threads = T. OpenVINO: CPU,
INFERENCE_NUM_THREADS = T, PERFORMANCE_HINT LATENCY, INFERENCE_PRECISION_HINT f32 (without it OpenVINO runs
bf16 on AVX-512 machines), one synchronous infer request. kiln_so: the model exported by `kiln export`
and run by the runtime library (`kiln bench MODEL.so`), against the JIT's own run; its preparation time is
the runtime's load. Preparation times (kiln's compile, ORT's session, OpenVINO's read + compile) are
reported beside the ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ENGINES = ["kiln", "ort", "openvino", "kiln_so"]
LABEL = {"kiln": "kiln", "ort": "ORT", "openvino": "OpenVINO", "kiln_so": "kiln's exported .so"}


def timed_round(run, runs):
    t = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        t.append((time.perf_counter() - start) * 1e3)
    return statistics.median(t)


class Ort:
    def __init__(self, model, x, threads):
        import onnxruntime as ort
        start = time.perf_counter()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.prepare_ms = (time.perf_counter() - start) * 1e3
        self.feed = {self.sess.get_inputs()[0].name: x}
        self.version = ort.__version__

    def __call__(self):
        self.sess.run(None, self.feed)


class OpenVino:
    def __init__(self, model, x, threads):
        import openvino as ov
        start = time.perf_counter()
        core = ov.Core()
        cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        compiled = core.compile_model(core.read_model(model), "CPU", cfg)
        self.req = compiled.create_infer_request()
        self.prepare_ms = (time.perf_counter() - start) * 1e3
        self.req.set_tensor(compiled.inputs[0], ov.Tensor(x))
        self.version = ov.__version__

    def __call__(self):
        self.req.infer()


class Kiln:
    """`kiln bench --rounds-on-stdin`: one compile, then a round of runs per line written to it."""

    def __init__(self, kiln, model, input_path, threads, runs, opt_level):
        compile_flags = [] if model.endswith(".so") else ["--opt-level", str(opt_level)]
        self.proc = subprocess.Popen(
            [kiln, "bench", model, "--input", f"input={input_path}", "--threads", str(threads), *compile_flags,
             "--runs", str(runs), "--rounds-on-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.prepare_ms = None
        for line in self.proc.stdout:
            if line.startswith("compile "):
                self.prepare_ms = float(line.split()[1])
            if line.startswith("loaded ") and " in " in line:
                self.prepare_ms = float(line.split(" in ")[1].split()[0])
            if line.startswith("rounds"):
                break
        else:
            raise SystemExit(f"{kiln} bench {model} exited before its first round (exit code {self.proc.wait()})")

    def round(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("round "):
                return float(line.split()[2])
        raise SystemExit(f"kiln exited in the middle of a round (exit code {self.proc.wait()})")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def check_accuracy(kiln, model, input_path, reference, opt_level):
    """kiln's output against PyTorch's: the largest difference relative to the output's largest magnitude."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([kiln, "run", model, "--input", f"input={input_path}", "--opt-level", str(opt_level), "--output-dir", out],
                       check=True, stdout=subprocess.DEVNULL)
        got = np.load(os.path.join(out, "output.npy"))
    want = np.load(reference)
    if got.shape != want.shape:
        raise SystemExit(f"{model}: kiln's output has shape {got.shape}, PyTorch's {want.shape}")
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def bench_model(a, name, threads):
    model, input_path = os.path.join(a.zoo, f"{name}.onnx"), os.path.join(a.zoo, f"{name}.input.npy")
    x = np.load(input_path)
    peers = {"ort": Ort, "openvino": OpenVino}
    engines = {}
    exported = tempfile.TemporaryDirectory()
    for e in a.engines:
        if e in ("kiln", "kiln_so"):
            path = model
            if e == "kiln_so":
                path = os.path.join(exported.name, f"{name}.so")
                subprocess.run([a.kiln, "export", model, "-o", path, "--threads", str(threads), "--opt-level", str(a.opt_level)],
                               check=True, stdout=subprocess.DEVNULL)
            k = Kiln(a.kiln, path, input_path, threads, a.runs, a.opt_level)
            engines[e] = (k.round, k)
        else:
            p = peers[e](model, x, threads)
            for _ in range(3):
                p()
            engines[e] = (lambda p=p: timed_round(p, a.runs), p)
    times = {e: [] for e in a.engines}
    for r in range(a.rounds):
        order = a.engines[r % len(a.engines):] + a.engines[:r % len(a.engines)]
        for e in order:
            times[e].append(engines[e][0]())
    result = {"model": name, "threads": threads, "ms": {e: statistics.median(t) for e, t in times.items()},
              "prepare_ms": {e: engines[e][1].prepare_ms for e in a.engines}, "ratio": {}}
    if "kiln_so" in engines:
        engines["kiln_so"][1].close()
    exported.cleanup()
    if "kiln" in engines:
        engines["kiln"][1].close()
        for e in a.engines:
            if e != "kiln":
                result["ratio"][e] = statistics.median(p / k for p, k in zip(times[e], times["kiln"]))
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kiln", required=True, help="the kiln command (build/tools/kiln)")
    p.add_argument("--zoo", required=True, help="the directory scripts/make_zoo.py wrote")
    p.add_argument("--models", help="comma-separated names (default: every model in the zoo)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--engines", default="kiln,ort,openvino", help="of " + ",".join(ENGINES) + "; kiln_so is asked for by name")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--opt-level", type=int, default=3)
    p.add_argument("--json", help="also write every figure to this file")
    a = p.parse_args()
    a.engines = a.engines.split(",")
    if unknown := [e for e in a.engines if e not in ENGINES]:
        p.error(f"--engines: unknown {', '.join(unknown)}; the engines are {', '.join(ENGINES)}")
    models = a.models.split(",") if a.models else sorted(f[:-5] for f in os.listdir(a.zoo) if f.endswith(".onnx"))
    if missing := [m for m in models if not os.path.exists(os.path.join(a.zoo, f"{m}.onnx"))]:
        p.error(f"--models: {', '.join(missing)} not in {a.zoo}; run scripts/make_zoo.py {a.zoo}")
    thread_counts = [int(t) for t in a.threads.split(",")]

    accuracy = {}
    if "kiln" in a.engines:
        for m in models:
            accuracy[m] = check_accuracy(a.kiln, os.path.join(a.zoo, f"{m}.onnx"), os.path.join(a.zoo, f"{m}.input.npy"),
                                         os.path.join(a.zoo, f"{m}.output.npy"), a.opt_level)
            print(f"{m}: kiln against PyTorch, max relative error {accuracy[m]:.2e}", file=sys.stderr)
    results = []
    for m in models:
        for t in thread_counts:
            results.append(bench_model(a, m, t))
            print(f"{m} {t}t: " + ", ".join(f"{LABEL[e]} {v:.2f} ms" for e, v in results[-1]["ms"].items()), file=sys.stderr)

    peers = [e for e in a.engines if e != "kiln"]
    print(f"peer time / kiln time, median over {a.rounds} alternating rounds of {a.runs} runs (above 1: kiln is faster)\n")
    head = ["model"] + [f"vs {LABEL[e]}, {t}t" for t in thread_counts for e in peers] + ["kiln compile ms"] + [f"{LABEL[e]} prepare ms" for e in peers] + ["max rel. error"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for m in models:
        rows = {r["threads"]: r for r in results if r["model"] == m}
        cells = [m] + [f"{rows[t]['ratio'].get(e, float('nan')):.2f}" for t in thread_counts for e in peers]
        first = rows[thread_counts[0]]["prepare_ms"]
        cells += [f"{first.get('kiln') or float('nan'):.0f}"] + [f"{first[e]:.0f}" for e in peers]
        cells += [f"{accuracy[m]:.1e}" if m in accuracy else "-"]
        print("| " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "accuracy": accuracy, "rounds": a.rounds, "runs": a.runs}, f, indent=1)


if __name__ == "__main__":
    main()
