#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, run by the Makefile after set-up.
#
# Until the bundled model lands (issue 6), the end-to-end paths that exist are the two benchmarks that make the
# product's case: causal linear attention against softmax attention (training-time cost, growing with T), and the
# streaming per-chunk latency as a stream grows (flat for the linear model, growing for softmax with a KV cache).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# Threads sleep instead of spinning while waiting: much faster for small ops on a busy 2-core machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
echo "== Transcurrent demo =="
echo
echo "-- 1. causal linear attention vs softmax attention (forward + backward, quick) --"
$PY tools/bench_attention.py --quick --out runs/demo/bench_attention
echo
echo "-- 2. streaming: per-chunk latency as the stream grows, linear vs softmax (quick) --"
$PY tools/bench_streaming.py --quick --out runs/demo/bench_streaming
echo
echo "Results: runs/demo/ (tables, JSON and plots)"
