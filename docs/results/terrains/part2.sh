#!/usr/bin/env bash
# The terrain study, part 2 (README.md: the design): the hard terrain through a curriculum of
# the ladder's mixes against direct fine-tuning on hardcore; momentum, seeds 0-2, 3M steps per
# run, from the common start, two runs at a time (one per arm). Re-running continues where it
# stopped.
# Run from the repository root, ideally from a checkout no one edits meanwhile.
set -euo pipefail
start=docs/results/starts/walker-momentum-seed-9
runs=runs/terrains/curriculum
curriculum='[{terrain: hardcore-25, min_return: 200, steps: 400000},
             {terrain: hardcore-50, min_return: 150, steps: 600000},
             {terrain: hardcore-75, min_return: 100, steps: 800000},
             {terrain: hardcore}]'
common=(--optimizers momentum --seeds 0-2 --timesteps 3000000 --jobs 1 --runs-dir "$runs"
        --env fop_rl/BipedalWalkerTerrain-v0
        --init-from "$start" --init-model last)
# the two arms side by side, one core each, seeds in order: no core idles while a sweep's
# odd run finishes, and each seed's pair completes together for interim reports
fop-rl sweep "${common[@]}" --set "training.curriculum=$curriculum" &
fop-rl sweep "${common[@]}" --terrain hardcore &
wait
