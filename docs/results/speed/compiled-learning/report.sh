#!/usr/bin/env bash
# The runs of run.sh under one runs folder, labelled by variant, and fop-rl report over them.
set -euo pipefail
out=docs/results/speed/compiled-learning
both=runs/compiled-learning/both/BipedalWalker-v3
mkdir -p "$both"
for variant in compiled eager; do
  ln -sfn "$PWD/runs/compiled-learning/$variant/BipedalWalker-v3/momentum" "$both/$variant"
done
fop-rl report runs/compiled-learning/both --baseline eager --out "$out/report"
