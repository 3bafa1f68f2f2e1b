#!/usr/bin/env bash
# The difficulty of every terrain preset: the mean return of the common start (a momentum walker,
# docs/results/starts/) over 50 deterministic episodes on it, all on the reference simulator.
# Re-running skips the presets already measured; names as arguments measure only those (two
# such lists in parallel use both cores). Run from the repository root.
set -euo pipefail
start=docs/results/starts/walker-momentum-seed-9
out=docs/results/terrains/presets
mkdir -p "$out"
names=("$@")
[ ${#names[@]} -gt 0 ] || read -ra names <<< "$(python -c "from fop_rl.terrain import presets; print(*presets())")"
for preset in "${names[@]}"; do
  if [ ! -s "$out/$preset.json" ]; then
    fop-rl evaluate "$start" --model last --terrain "$preset" --episodes 50 \
      --backend gymnasium --json > "$out/$preset.json.tmp"
    mv "$out/$preset.json.tmp" "$out/$preset.json"
  fi
done
python docs/results/terrains/presets_table.py "$out" > docs/results/terrains/presets.md
echo "presets measured: $(date -u +%FT%TZ)"
