#!/usr/bin/env bash
# Report of fop-policy-momentum (runs/policy-only) beside the decisive study's momentum and
# fop-momentum walkers (runs/decisive/walker), on the seeds all three have complete: report.md
# against both, late returns, P's spectra. An argument (like 0-5) reports only those seeds.
set -euo pipefail
out=docs/results/policy-only
both=runs/policy-only-compare/BipedalWalker-v3  # the three labels, through a folder of links
rm -rf "$both" && mkdir -p "$both"
for label in runs/decisive/walker/BipedalWalker-v3/{momentum,fop-momentum} \
             runs/policy-only/BipedalWalker-v3/fop-policy-momentum; do
  ln -s "$(realpath "$label")" "$both/$(basename "$label")"
done
seeds=${1:-0-9}
fop-rl report runs/policy-only-compare --out "$out" --threshold 200 --seeds "$seeds" \
  --baseline momentum --baseline fop-momentum
python docs/results/decisive/late.py runs/policy-only-compare "$seeds" > "$out/late.md"
bash docs/results/tools/inspect.sh "$out" runs "" runs/policy-only/BipedalWalker-v3/fop-policy-momentum
python docs/results/tools/spectra.py "$out/inspect" > "$out/spectra.md"
