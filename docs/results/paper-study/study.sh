#!/usr/bin/env bash
# The paper's RL experiment (figure 4) at this machine's scale, with fop-rl's own commands.
# Phase 1 (docs/results/pilot-tuning/phase1.sh) tuned momentum's and Adam's lr; this script picks
# them, tunes FOP's hyper_lr at momentum's lr (phase 2), then runs the study and the reports.
set -euo pipefail
T_TUNE=100000 T_WALKER=300000 T_HARDCORE=200000
for d in runs/tuning/*-lr*; do fop-rl report "$d" --reps 1000 > /dev/null 2>&1; done
MLR=$(python docs/results/paper-study/pick_best.py runs/tuning/momentum-lr*)
ALR=$(python docs/results/paper-study/pick_best.py runs/tuning/adam-lr*)
echo "picked: momentum lr $MLR, adam lr $ALR"

# Phase 2: FOP-momentum's hyper_lr at momentum's lr, same seeds and budget.
for h in 1.0e-6 1.0e-5 1.0e-4; do
  fop-rl sweep --env BipedalWalker-v3 --optimizers fop-momentum --seeds 100-101 \
    --timesteps $T_TUNE --jobs 2 --runs-dir runs/tuning/fop-momentum-hyperlr$h \
    --set optimizers.fop-momentum.lr=$MLR --set optimizers.fop-momentum.hyper_lr=$h
  fop-rl report runs/tuning/fop-momentum-hyperlr$h --reps 1000 > /dev/null 2>&1
done
HLR=$(python docs/results/paper-study/pick_best.py runs/tuning/fop-momentum-hyperlr*)
echo "picked: fop-momentum hyper_lr $HLR"

SETS=(--set optimizers.momentum.lr=$MLR --set optimizers.fop-momentum.lr=$MLR
      --set optimizers.fop-momentum.hyper_lr=$HLR --set optimizers.adam.lr=$ALR)
fop-rl sweep --env BipedalWalker-v3 --optimizers momentum fop-momentum adam --seeds 0-4 \
  --timesteps $T_WALKER --jobs 2 --runs-dir runs/study/walker "${SETS[@]}"
fop-rl sweep --env BipedalWalkerHardcore-v3 --optimizers momentum fop-momentum adam \
  --seeds 0-2 --timesteps $T_HARDCORE --jobs 2 --runs-dir runs/study/hardcore "${SETS[@]}"
fop-rl report runs/study/walker --out docs/results/bipedal-walker --baseline momentum
fop-rl report runs/study/hardcore --out docs/results/bipedal-walker-hardcore --baseline momentum
echo "study finished: $(date -u +%FT%TZ)"
