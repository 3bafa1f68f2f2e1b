#!/usr/bin/env bash
# The learning check of README.md: momentum and fop-momentum on the packaged walker, seeds 0-4 x
# 300k steps, compiled (ppo.compile=true) and eager (SB3's PPO), JOBS runs at a time (default 2).
# Re-running continues where it stopped.
set -euo pipefail
for variant in compiled eager; do
  compile=$([ "$variant" = compiled ] && echo true || echo false)
  fop-rl sweep --optimizers momentum fop-momentum --seeds 0-4 --timesteps 300000 \
    --jobs "${JOBS:-2}" --runs-dir "runs/gradient-learning/$variant" --set "ppo.compile=$compile"
done
