#!/usr/bin/env bash
# The runs of run.sh labelled <optimizer>-<variant> under one runs folder, and fop-rl report
# over them (each optimizer's compiled runs against its eager ones). The same variables as
# run.sh, and OUT (default report/; the fresh seeds' check: report-fresh/).
set -euo pipefail
runs=${RUNS:-runs/gradient-learning}
out=${OUT:-docs/results/speed/gradient-learning/report}
read -ra optimizers <<< "${OPTIMIZERS:-momentum fop-momentum}"
both=$runs/both/BipedalWalker-v3
mkdir -p "$both"
baselines=()
for optimizer in "${optimizers[@]}"; do
  for variant in compiled eager; do
    ln -sfn "$PWD/$runs/$variant/BipedalWalker-v3/$optimizer" "$both/$optimizer-$variant"
  done
  baselines+=(--baseline "$optimizer-eager")
done
fop-rl report "$runs/both" "${baselines[@]}" --out "$out"
