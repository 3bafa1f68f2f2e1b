#!/usr/bin/env bash
# The decisive study: does FOP help PPO on the walker and on hard terrain? Every optimizer with
# the packaged (tuned) settings: docs/results/tuning/ for momentum, adam and fop-momentum; the
# FOP variants carried from the screening (docs/results/variants/) take fop-momentum's.
#   Walker: seeds 0-9, 1,000,000 steps per run (EnvPool, which passed the equivalence check).
#   Hard terrain: one common start (best_run.py: the momentum walker whose last model has the
#   best 50-episode final evaluation), fine-tuned by each optimizer on
#   BipedalWalkerHardcore-v3, seeds 0-4, 1,000,000 steps per run, at the start's discount
#   (0.999, configs/bipedal_walker.yaml; the hard terrain config's 0.99 would make the start's
#   value head and return statistics wrong at step 0 for every optimizer).
#   Then, if 10 walker seeds leave the best FOP label against momentum undecided (the rule:
#   more_seeds.py), seeds 10-19 for those two labels.
# Run from the repository root, ideally from a checkout no one edits meanwhile. Re-running
# continues where it stopped; seeds go in pairs, so at any point every label has the same
# seeds. Interim and final reports: bash docs/results/decisive/report.sh
set -euo pipefail
runs=runs/decisive
labels=(momentum adam fop-momentum "$@")  # the screening's choice of variants as arguments
for seeds in 0-1 2-3 4-5 6-7 8-9; do
  /usr/bin/time -f "walker seeds $seeds: %e s wall" fop-rl sweep --env BipedalWalker-v3 \
    --optimizers "${labels[@]}" --seeds "$seeds" --timesteps 1000000 --jobs 2 \
    --runs-dir "$runs/walker"
done
start=$(python docs/results/decisive/best_run.py "$runs/walker/BipedalWalker-v3/momentum")
for seeds in 0-1 2-3 4; do
  /usr/bin/time -f "hard terrain seeds $seeds: %e s wall" fop-rl sweep \
    --env BipedalWalkerHardcore-v3 --optimizers "${labels[@]}" --seeds "$seeds" \
    --timesteps 1000000 --jobs 2 --runs-dir "$runs/hardcore" --init-from "$start" \
    --init-model last --set ppo.gamma=0.999
done
# seeds 10-19 for momentum and the best FOP label if 10 seeds leave them undecided (more_seeds.py)
fop-rl report "$runs/walker" --out "$runs/walker-report-0-9" --seeds 0-9 --threshold 200 > /dev/null
extra=$(python docs/results/decisive/more_seeds.py "$runs/walker-report-0-9/report.json")
if [ -n "$extra" ]; then
  for seeds in 10-11 12-13 14-15 16-17 18-19; do
    /usr/bin/time -f "walker seeds $seeds: %e s wall" fop-rl sweep --env BipedalWalker-v3 \
      --optimizers momentum "$extra" --seeds "$seeds" --timesteps 1000000 --jobs 2 \
      --runs-dir "$runs/walker"
  done
fi
bash docs/results/decisive/report.sh
echo "decisive study finished: $(date -u +%FT%TZ)"
