#!/usr/bin/env bash
# The terrain study's part 2 report: part2.sh's runs under one folder, labelled curriculum and
# direct, and fop-rl report over them (the evaluations are on hardcore in both arms); then every
# run's last model on BipedalWalkerHardcore-v3 itself (50 episodes, hardcore-v3.json) and a GIF
# of the best of them there (best-agent.gif).
set -euo pipefail
runs=runs/terrains/curriculum
both=runs/terrains/curriculum-vs-direct/fop_rl-BipedalWalkerTerrain-v0-hardcore
mkdir -p "$both"
ln -sfn "$PWD/$(ls -d $runs/fop_rl-BipedalWalkerTerrain-v0-curriculum-*)/momentum" \
  "$both/curriculum"
ln -sfn "$PWD/$runs/fop_rl-BipedalWalkerTerrain-v0-hardcore/momentum" "$both/direct"
fop-rl report runs/terrains/curriculum-vs-direct --baseline direct \
  --reference "decisive study, 1M steps=-66.4" --out docs/results/terrains/curriculum
out=docs/results/terrains/curriculum
best=$(python docs/results/terrains/on_hardcore.py "$both" --out "$out/hardcore-v3.json" --jobs 2)
rm -f "$out/best-agent.gif"  # this script's own figure, made again
fop-rl render "$both/$best" --model last --terrain hardcore --out "$out/best-agent.gif" \
  --fps 12 --scale 0.4
echo "best agent on BipedalWalkerHardcore-v3: $best"
