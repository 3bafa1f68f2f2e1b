#!/usr/bin/env bash
# The learning check of README.md: the optimizers on the packaged walker, 300k steps per run,
# compiled (ppo.compile=true) and eager (SB3's PPO), JOBS runs at a time (default 2). The first
# check: momentum and fop-momentum, seeds 0-4 (the defaults); the fresh seeds' check:
# OPTIMIZERS=fop-momentum SEEDS=5-9 RUNS=runs/gradient-learning-fresh. Re-running continues
# where it stopped.
set -euo pipefail
runs=${RUNS:-runs/gradient-learning}
read -ra optimizers <<< "${OPTIMIZERS:-momentum fop-momentum}"
for variant in compiled eager; do
  compile=$([ "$variant" = compiled ] && echo true || echo false)
  fop-rl sweep --optimizers "${optimizers[@]}" --seeds "${SEEDS:-0-4}" --timesteps 300000 \
    --jobs "${JOBS:-2}" --runs-dir "$runs/$variant" --set "ppo.compile=$compile"
done
