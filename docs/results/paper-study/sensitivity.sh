#!/usr/bin/env bash
# After study.sh and extra.sh: is fop-momentum's hyper_lr too large? The same 5 walker seeds
# with hyper_lr 1e-5 (the tuning picked 1e-4 of {1e-6, 1e-5, 1e-4} at 100k steps on other
# seeds), then one report with momentum and fop-momentum at 1e-4 from the study.
set -euo pipefail
fop-rl sweep --env BipedalWalker-v3 --optimizers fop-momentum --seeds 0-4 \
  --timesteps 300000 --jobs 2 --runs-dir runs/study/walker-hyper-lr-1e-5 \
  --set optimizers.fop-momentum.lr=2.0e-3 --set optimizers.fop-momentum.hyper_lr=1.0e-5
# the report's labels are directory names: link the three sets of runs side by side
side=runs/study/sensitivity/BipedalWalker-v3
mkdir -p "$side"
ln -sfn ../../walker/BipedalWalker-v3/momentum "$side/momentum"
ln -sfn ../../walker/BipedalWalker-v3/fop-momentum "$side/fop-momentum"
ln -sfn ../../walker-hyper-lr-1e-5/BipedalWalker-v3/fop-momentum "$side/fop-momentum-hyper-lr-1e-5"
fop-rl report runs/study/sensitivity --out docs/results/sensitivity --baseline momentum \
  --threshold 100
fop-rl inspect runs/study/walker-hyper-lr-1e-5/BipedalWalker-v3/fop-momentum/seed-3 \
  --out docs/results/sensitivity/inspect-hyper-lr-1e-5-seed-3.png \
  | tee docs/results/sensitivity/inspect-hyper-lr-1e-5-seed-3.txt
echo "sensitivity finished: $(date -u +%FT%TZ)"
