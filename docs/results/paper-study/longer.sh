#!/usr/bin/env bash
# Does FOP catch up with more steps? momentum and fop-momentum on the study's 5
# walker seeds for 600,000 steps (twice the study), with the tuned settings, then their report.
set -euo pipefail
fop-rl sweep --env BipedalWalker-v3 --optimizers momentum fop-momentum --seeds 0-4 \
  --timesteps 600000 --jobs 2 --runs-dir runs/study/walker-600k \
  --set optimizers.momentum.lr=2.0e-3 \
  --set optimizers.fop-momentum.lr=2.0e-3 --set optimizers.fop-momentum.hyper_lr=1.0e-4
fop-rl report runs/study/walker-600k --out docs/results/bipedal-walker-600k --baseline momentum \
  --threshold 100
for seed in 0 1 2 3 4; do  # P's spectrum at 600k; the table of seed 3 is kept
  fop-rl inspect runs/study/walker-600k/BipedalWalker-v3/fop-momentum/seed-$seed \
    --out runs/study/walker-600k/inspect-seed-$seed.png > runs/study/walker-600k/inspect-seed-$seed.txt
done
cp runs/study/walker-600k/inspect-seed-3.txt docs/results/bipedal-walker-600k/inspect-fop-momentum-seed-3.txt
echo "longer finished: $(date -u +%FT%TZ)"
