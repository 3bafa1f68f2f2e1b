#!/usr/bin/env bash
# The speed benchmarks, on a machine with nothing else running; their outputs are committed.
set -euo pipefail
python benchmarks/optimizer_step.py --repeats 7 --steps 300 \
  | tee docs/results/benchmarks/optimizer_step.txt
python benchmarks/throughput.py --vec-env both | tee docs/results/benchmarks/throughput.txt
echo "benchmarks finished: $(date -u +%FT%TZ)"
