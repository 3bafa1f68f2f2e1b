#!/usr/bin/env bash
# The terrain study's part 2 report: part2.sh's runs under one folder, labelled curriculum and
# direct, and fop-rl report over them (the evaluations are on hardcore in both arms); then every
# run's last model on BipedalWalkerHardcore-v3 itself (50 episodes, hardcore-v3.json) and a GIF
# of the best of them there (best-agent.gif).
#   bash docs/results/terrains/part2_report.sh [SEEDS [OUT]]
# SEEDS (default "0 1 2") and OUT (default docs/results/terrains/curriculum) make the interim
# reports, e.g. "0 1" docs/results/terrains/curriculum/interim-seeds-0-1.
set -euo pipefail
seeds=${1:-0 1 2}
out=${2:-docs/results/terrains/curriculum}
runs=runs/terrains/curriculum
both=runs/terrains/curriculum-vs-direct-${seeds// /-}/fop_rl-BipedalWalkerTerrain-v0-hardcore
curriculum=$(ls -d $runs/fop_rl-BipedalWalkerTerrain-v0-curriculum-*)/momentum
direct=$runs/fop_rl-BipedalWalkerTerrain-v0-hardcore/momentum
mkdir -p "$both/curriculum" "$both/direct"
for seed in $seeds; do
  ln -sfn "$PWD/$curriculum/seed-$seed" "$both/curriculum/seed-$seed"
  ln -sfn "$PWD/$direct/seed-$seed" "$both/direct/seed-$seed"
done
fop-rl report "$(dirname "$both")" --baseline direct \
  --reference "decisive study, 1M steps=-66.4" --out "$out"
best=$(python docs/results/terrains/on_hardcore.py "$both" --out "$out/hardcore-v3.json" --jobs 2)
rm -f "$out/best-agent.gif"  # this script's own figure, made again
fop-rl render "$both/$best" --model last --terrain hardcore --out "$out/best-agent.gif" \
  --fps 12 --scale 0.4
echo "best agent on BipedalWalkerHardcore-v3: $best"
