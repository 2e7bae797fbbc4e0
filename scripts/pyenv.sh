#!/usr/bin/env bash
# A Python environment with the pinned reference tools (onnx, whose wheels still ship the backend node test
# data, ONNX Runtime and numpy) in build/pyenv; prints its interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
env=build/pyenv
if ! "$env/bin/python" -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; then
  python3 -m venv "$env" >&2
  "$env/bin/pip" install -q --disable-pip-version-check "onnx==1.17.0" "onnxruntime==1.20.1" "numpy==2.0.2" >&2
fi
echo "$PWD/$env/bin/python"
