#!/usr/bin/env bash
# One identical search for momentum, adam and fop-momentum on BipedalWalker-v3 (fop-rl tune):
# 16 trials each, one tuning seed (100; the studies use 0-19), 300,000 steps per trial, TPE
# sampler, median pruner, objective: best-so-far evaluation return at 300k steps. The search
# spaces are the packaged config's `search:` section. Run from the repository root; re-running
# continues the studies. Copies the outputs here.
set -euo pipefail
# the studies so far travel in docs/results/tuning/<optimizer>/study.journal: a fresh machine
# continues from them
for opt in momentum adam fop-momentum; do
  study=runs/tuning/tune/BipedalWalker-v3/$opt
  if [ ! -f "$study/study.journal" ] && [ -f "docs/results/tuning/$opt/study.journal" ]; then
    mkdir -p "$study" && cp "docs/results/tuning/$opt/study.journal" "$study/"
  fi
done
# In rounds (8 trials each, then 16), so that an interruption leaves every optimizer
# with the same budget so far.
for trials in 8 16; do
  for opt in momentum adam fop-momentum; do
    /usr/bin/time -f "$opt, $trials trials: %e s wall" fop-rl tune --optimizer "$opt" \
      --trials "$trials" --timesteps 300000 --seeds 100 --jobs 2 --pruner median \
      --objective final --runs-dir runs/tuning
  done
done
for opt in momentum adam fop-momentum; do
  mkdir -p "docs/results/tuning/$opt"
  for f in best.yaml trials.csv history.png importance.png study.journal; do
    cp "runs/tuning/tune/BipedalWalker-v3/$opt/$f" "docs/results/tuning/$opt/"
  done
done
