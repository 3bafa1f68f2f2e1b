#!/usr/bin/env bash
# The runs of run.sh labelled <optimizer>-<variant> under one runs folder, and fop-rl report
# over them (each optimizer's compiled runs against its eager ones).
set -euo pipefail
out=docs/results/speed/gradient-learning
both=runs/gradient-learning/both/BipedalWalker-v3
mkdir -p "$both"
for variant in compiled eager; do
  for optimizer in momentum fop-momentum; do
    ln -sfn "$PWD/runs/gradient-learning/$variant/BipedalWalker-v3/$optimizer" \
      "$both/$optimizer-$variant"
  done
done
fop-rl report runs/gradient-learning/both --baseline momentum-eager \
  --baseline fop-momentum-eager --out "$out/report"
