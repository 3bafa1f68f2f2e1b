#!/usr/bin/env bash
# The terrain study's part 2 report: part2.sh's runs under one folder, labelled curriculum and
# direct, and fop-rl report over them (the evaluations are on hardcore in both arms).
set -euo pipefail
runs=runs/terrains/curriculum
both=runs/terrains/curriculum-vs-direct/fop_rl-BipedalWalkerTerrain-v0-hardcore
mkdir -p "$both"
ln -sfn "$PWD/$(ls -d $runs/fop_rl-BipedalWalkerTerrain-v0-curriculum-*)/momentum" \
  "$both/curriculum"
ln -sfn "$PWD/$runs/fop_rl-BipedalWalkerTerrain-v0-hardcore/momentum" "$both/direct"
fop-rl report runs/terrains/curriculum-vs-direct --baseline direct \
  --reference "decisive study, 1M steps=-66.4" --out docs/results/terrains/curriculum
