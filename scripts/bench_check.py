"""Compares benchmark ratios with the baseline kept in the repo, and prints every case that fell.

bench_check.py BASELINE [--gemm FILE]... [--conv FILE]... [--zoo FILE]... [--update] [--tolerance 0.10]
                [--fell-out FILE]

--gemm and --conv are the console output of bench_gemm and bench_conv (their closing table gives kiln's
GFLOP/s over oneDNN's per case); --zoo is the JSON of scripts/bench_zoo.py (peer time / kiln time per model
and thread count). Every ratio is above 1 where kiln is faster. Each option may be given once per run: a case
measured in several runs counts with its best ratio, so it falls only if it fell in every run (this VM drifts
by 10% for seconds at a time; scripts/bench_check.sh measures a fallen case again before it reports it). A
case whose ratio fell by more than the tolerance from the baseline is a regression: the script lists them
(one per line in --fell-out, if given) and exits 1. --update rewrites the baseline with this run's ratios (do
it only with a note saying why).
"""
import argparse
import json
import sys


def table_ratios(path, op):
    """The closing table of a bench_common.hpp suite: case kiln onednn eigen kiln/onednn kiln/eigen."""
    out = {}
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) == 6 and cols[0].startswith(op + "/"):
                try:
                    ratio = float(cols[4])
                except ValueError:
                    continue
                if ratio > 0:
                    out[f"{cols[0]} kiln/onednn"] = ratio
    return out


def zoo_ratios(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for r in data["results"]:
        for peer, ratio in r["ratio"].items():
            out[f"zoo/{r['model']}/{r['threads']}t {peer}/kiln"] = ratio
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("baseline")
    p.add_argument("--gemm", action="append", default=[])
    p.add_argument("--conv", action="append", default=[])
    p.add_argument("--zoo", action="append", default=[])
    p.add_argument("--update", action="store_true")
    p.add_argument("--tolerance", type=float, default=0.10)
    p.add_argument("--fell-out")
    a = p.parse_args()
    now = {}
    runs = [table_ratios(f, "gemm") for f in a.gemm] + [table_ratios(f, "conv2d") for f in a.conv] + [zoo_ratios(f) for f in a.zoo]
    for run in runs:
        for key, ratio in run.items():
            now[key] = max(now.get(key, ratio), ratio)
    if not now:
        sys.exit("bench_check.py: no ratios found; give --gemm, --conv or --zoo with a benchmark's output")
    base = {}
    try:
        with open(a.baseline) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    case, kind, ratio = line.split()
                    base[f"{case} {kind}"] = float(ratio)
    except FileNotFoundError:
        if not a.update:
            sys.exit(f"bench_check.py: no baseline {a.baseline}; run with --update to write one")
    fell = []
    print(f"{'case':<48} {'ratio':>14} {'now':>7} {'baseline':>9} {'change':>8}")
    for key in sorted(now):
        case, kind = key.split()
        b = base.get(key)
        change = "" if b is None else f"{now[key] / b - 1:+.0%}"
        mark = ""
        if b is not None and now[key] < b * (1 - a.tolerance):
            fell.append(key)
            mark = "  FELL"
        print(f"{case:<48} {kind:>14} {now[key]:7.2f} {'' if b is None else f'{b:.2f}':>9} {change:>8}{mark}")
    if a.update:
        with open(a.baseline, "w") as f:
            f.write("# Ratios of kiln to its peers (above 1: kiln faster), written by scripts/bench_check.sh --update.\n")
            f.write("# Update only with a note saying why (a new case, a peer upgraded, an accepted trade).\n")
            for key in sorted(now):
                f.write(f"{key} {now[key]:.3f}\n")
        print(f"baseline {a.baseline} updated")
        return
    if a.fell_out:
        with open(a.fell_out, "w") as f:
            f.writelines(key + "\n" for key in fell)
    if fell:
        print(f"\n{len(fell)} case(s) fell by more than {a.tolerance:.0%}: " + ", ".join(fell))
        sys.exit(1)
    print(f"\nno case fell by more than {a.tolerance:.0%}")


if __name__ == "__main__":
    main()
