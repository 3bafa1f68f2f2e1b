#!/usr/bin/env bash
# The terrain study, part 1 (README.md: the design): momentum, adam and fop-momentum fine-tune
# the common start on each rung of the ladder, seeds 0-4, 500k steps per run, on the gymnasium
# backend. Two rungs at a time, one core each; seeds in order, so that interim reports cover
# whole seeds. Re-running continues where it stopped (complete runs are skipped, interrupted
# ones resume). Run from the repository root, ideally from a checkout no one edits meanwhile.
# Reports: bash docs/results/terrains/report.sh [SEEDS]
set -uo pipefail
start=docs/results/starts/walker-momentum-seed-9
runs=runs/terrains/ladder
sweep() {  # one rung, one seed: the three optimizers one after another
  fop-rl sweep --terrain "$1" --optimizers momentum adam fop-momentum --seeds "$2" \
    --timesteps 500000 --jobs 1 --runs-dir "$runs" \
    --init-from "$start" --init-model last
}
for seed in 0 1 2 3 4; do
  (sweep hardcore-12 "$seed"; sweep hardcore-38 "$seed") &
  (sweep hardcore-25 "$seed"; sweep hardcore-50 "$seed") &
  wait
  echo "seed $seed done: $(date -u +%FT%TZ)"
done
