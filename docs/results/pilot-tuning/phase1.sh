#!/usr/bin/env bash
# Tuning, phase 1: learning rates of momentum and Adam on BipedalWalker-v3.
# 3 values x 2 seeds (100, 101: not the study's) x 100k steps, each through fop-rl sweep.
set -u
T=100000
for lr in 2.0e-3 5.0e-3 1.0e-2; do
  fop-rl sweep --env BipedalWalker-v3 --optimizers momentum --seeds 100-101 --timesteps $T \
    --jobs 2 --runs-dir runs/tuning/momentum-lr$lr --set optimizers.momentum.lr=$lr
done
for lr in 1.0e-4 3.0e-4 1.0e-3; do
  fop-rl sweep --env BipedalWalker-v3 --optimizers adam --seeds 100-101 --timesteps $T \
    --jobs 2 --runs-dir runs/tuning/adam-lr$lr --set optimizers.adam.lr=$lr
done
