"""Start-up: kiln's cold and warm compile next to ONNX Runtime's session creation, in alternating rounds.

bench_startup.py --kiln KILN [--kiln-before KILN2] --zoo DIR [--models a,b] [--rounds R] [--threads T]

For every model and round, in this order: kiln with an empty disk cache (cold: import, passes, lowering,
LLVM), kiln again on the cache the cold run filled (warm: import, then the whole executable linked from the
cache), and an ONNX Runtime session (default optimisations, intra_op_num_threads = T). kiln's figure is the
`compile` line of `kiln bench MODEL --runs 1` (inside the process, as ORT's is the session's construction);
with --kiln-before, an older build is timed cold in the same rounds, for a before/after column. The VM's
speed drifts for seconds at a time, so the engines alternate and each column is a median over rounds.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def kiln_compile(kiln, model, cache_dir, threads):
    env = dict(os.environ, KILN_CACHE_DIR=cache_dir)
    out = subprocess.run([kiln, "bench", model, "--runs", "1", "--warmup", "0", "--threads", str(threads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("compile "):
            return float(line.split()[1]), line.split("=", 1)[1].strip()
    raise SystemExit(f"{kiln} printed no compile line for {model}:\n{out}")


def ort_session(model, threads):
    import onnxruntime as ort
    start = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return (time.perf_counter() - start) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--kiln-before")
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--models", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    models = a.models.split(",") if a.models else sorted(f[:-5] for f in os.listdir(a.zoo) if f.endswith(".onnx"))
    rows = []
    for name in models:
        model = os.path.join(a.zoo, name + ".onnx")
        cold, warm, before, ort, split = [], [], [], [], ""
        for _ in range(a.rounds):
            d = tempfile.mkdtemp(prefix="kiln_startup_")
            try:
                ms, split = kiln_compile(a.kiln, model, d, a.threads)
                cold.append(ms)
                warm.append(kiln_compile(a.kiln, model, d, a.threads)[0])
            finally:
                shutil.rmtree(d, ignore_errors=True)
            if a.kiln_before:
                d = tempfile.mkdtemp(prefix="kiln_startup_before_")
                try:
                    before.append(kiln_compile(a.kiln_before, model, d, a.threads)[0])
                finally:
                    shutil.rmtree(d, ignore_errors=True)
            ort.append(ort_session(model, a.threads))
        med = statistics.median
        row = [name, f"{med(cold):.0f}"] + ([f"{med(before):.0f}"] if before else []) + [f"{med(warm):.0f}", f"{med(ort):.0f}",
                                                                                          f"{med(ort) / med(warm):.2f}", split]
        rows.append(row)
        print(" | ".join(row), flush=True)
    head = ["model", "kiln cold ms"] + (["kiln cold ms, before"] if a.kiln_before else []) + ["kiln warm ms", "ORT session ms",
                                                                                              "ORT / kiln warm", "last cold run's split"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
