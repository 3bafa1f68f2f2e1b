#!/usr/bin/env bash
# The terrain study's reports from runs/terrains/ladder: per rung (fop-rl report) and across
# rungs (trend.py). SEEDS (default 0-4) limits an interim report to the seeds complete.
set -euo pipefail
seeds=${1:-0-4}
out=docs/results/terrains/ladder
fop-rl report runs/terrains/ladder --out "$out" --seeds "$seeds" > /dev/null
python docs/results/terrains/trend.py runs/terrains/ladder --out "$out" \
  --rungs hardcore-12 hardcore-25 hardcore-38 hardcore-50
