#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Run by the Makefile after set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "== Transcurrent demo =="
echo "-- causal linear attention vs softmax attention (quick benchmark) --"
$PY tools/bench_attention.py --quick --out runs/demo/bench_attention
