#!/usr/bin/env bash
# After study.sh: FOP-norm (scale removed, rotation kept) on the same 5 walker seeds, untuned
# (fop-momentum's lr and hyper_lr), and the walker report again with it.
set -euo pipefail
fop-rl sweep --env BipedalWalker-v3 --optimizers fop-norm-momentum --seeds 0-4 \
  --timesteps 300000 --jobs 2 --runs-dir runs/study/walker \
  --set optimizers.fop-norm-momentum.lr=2.0e-3 --set optimizers.fop-norm-momentum.hyper_lr=1.0e-4
fop-rl report runs/study/walker --out docs/results/bipedal-walker --baseline momentum \
  --threshold 100
echo "extra finished: $(date -u +%FT%TZ)"
