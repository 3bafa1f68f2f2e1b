#!/usr/bin/env bash
# Screening of the FOP variants on BipedalWalker-v3: 5 seeds (0-4) x 300,000 steps, momentum and
# fop-momentum re-run beside the variants with the same code and packaged settings (the tuned
# ones: docs/results/tuning/), so that every row is comparable. Run from the repository root;
# re-running continues where it stopped (seeds in pairs, so an interruption leaves every label
# with the same seeds). Outputs: docs/results/variants/.
set -euo pipefail
runs=runs/variants
out=docs/results/variants
labels=(momentum fop-momentum fop-flat-momentum fop-cap-momentum fop-gamma-momentum
        fop-hnorm-momentum fop-kron-momentum)
for seeds in 0-1 2-3 4; do
  /usr/bin/time -f "seeds $seeds: %e s wall" fop-rl sweep --optimizers "${labels[@]}" \
    --seeds "$seeds" --timesteps 300000 --jobs 2 --runs-dir "$runs"
done
fop-rl report "$runs" --out "$out" --threshold 200
# P's spectrum at the end of every FOP run: the largest eigenvalue per layer
mkdir -p "$out/inspect"
for label in "${labels[@]:1}"; do
  for seed in 0 1 2 3 4; do
    run="$runs/BipedalWalker-v3/$label/seed-$seed"
    [ -f "$run/run.json" ] || continue
    fop-rl inspect "$run" --model last --out "$runs/inspect-$label-$seed.png" \
      > "$out/inspect/$label-seed-$seed.txt"
  done
done
python docs/results/tools/spectra.py "$out/inspect" > "$out/spectra.md"
