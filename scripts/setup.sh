#!/usr/bin/env bash
# Set up synthweb from nothing: a virtualenv in .venv with the project and its pinned
# dependencies (plus the dev/train extras: pytest, ruff, scikit-learn, skl2onnx).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "synthweb needs Python >= 3.11")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "synthweb installed in .venv ($(.venv/bin/python --version))"
