#!/usr/bin/env bash
# Python environments with pinned tools; prints the interpreter.
#   pyenv.sh          build/pyenv: the test suite's references (onnx, whose wheels still ship the backend
#                     node test data, ONNX Runtime and numpy)
#   pyenv.sh --peers  build/peers-env: the runtimes the benchmarks compare with (ONNX Runtime 1.31,
#                     OpenVINO 2026.4)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--peers" ]; then
  env=build/peers-env
  pins=("numpy==2.2.6" "onnxruntime==1.31.1" "openvino==2026.4.1")
  probe="import onnxruntime, openvino, numpy"
else
  env=build/pyenv
  pins=("onnx==1.17.0" "onnxruntime==1.20.1" "numpy==2.0.2")
  probe="import onnx, onnxruntime, numpy"
fi
want="${pins[*]}"
if ! "$env/bin/python" -c "$probe" >/dev/null 2>&1 || [ "$(cat "$env/pins" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$env" >&2
  "$env/bin/pip" install -q --disable-pip-version-check "${pins[@]}" >&2
  echo "$want" > "$env/pins"
fi
echo "$PWD/$env/bin/python"
