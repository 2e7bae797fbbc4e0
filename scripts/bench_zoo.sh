#!/usr/bin/env bash
# The model zoo benchmark: kiln, ONNX Runtime and OpenVINO in alternating rounds, 1 and 2 threads, and the
# table of ratios (docs/performance.md). Exports the zoo into build/zoo on first use.
#   bash scripts/bench_zoo.sh                         every model
#   bash scripts/bench_zoo.sh --models resnet18,squeezenet1_1 --threads 1 --rounds 4
# Arguments go to scripts/bench_zoo.py (--models, --threads, --engines, --rounds, --runs, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --zoo
py=$(bash scripts/pyenv.sh --peers)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kiln_cli
[ -f build/zoo/resnet18.onnx ] || /usr/bin/python3 scripts/make_zoo.py build/zoo
"$py" scripts/bench_zoo.py --kiln build/tools/kiln --zoo build/zoo "$@"
