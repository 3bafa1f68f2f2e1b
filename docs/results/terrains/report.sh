#!/usr/bin/env bash
# The terrain study's reports from runs/terrains/ladder: per rung (fop-rl report), across
# rungs (trend.py), and P in every complete fop-momentum run: at the end (fop-rl inspect, then
# spectra.py, per label and per run) and when it grew (growth.py; exploratory, not the test).
# SEEDS (default 0-4) limits the reports but the last two to the seeds complete.
set -euo pipefail
seeds=${1:-0-4}
runs=runs/terrains/ladder
out=docs/results/terrains/ladder
rungs=(hardcore-12 hardcore-25 hardcore-38 hardcore-50)
fop-rl report "$runs" --out "$out" --seeds "$seeds" > /dev/null
python docs/results/terrains/trend.py "$runs" --out "$out" --rungs "${rungs[@]}"
python docs/results/terrains/tables.py "$out" > "$out/tables.md"  # the README's tables
for rung in "${rungs[@]}"; do
  bash docs/results/tools/inspect.sh "$out" "$runs" "$rung-" \
    "$runs/fop_rl-BipedalWalkerTerrain-v0-$rung/fop-momentum"
done
python docs/results/tools/spectra.py "$out/inspect" --each > "$out/spectra.md"
python docs/results/terrains/growth.py "$runs" --out "$out"  # when P grew, run by run
