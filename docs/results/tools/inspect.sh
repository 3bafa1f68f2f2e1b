#!/usr/bin/env bash
# `fop-rl inspect` of the last model of every complete run in the label folders given: tables
# in OUT/inspect/<PREFIX><label>-seed-<n>.txt (what spectra.py reads), figures in FIGURES/.
# A run inspected since it ended is skipped.
#   bash docs/results/tools/inspect.sh OUT FIGURES PREFIX LABEL_DIR...
set -euo pipefail
out=$1 figures=$2 prefix=$3
shift 3
mkdir -p "$out/inspect"
for label_dir in "$@"; do
  for run in "$label_dir"/seed-*; do
    [ -f "$run/model.zip" ] || continue
    name="$prefix$(basename "$label_dir")-$(basename "$run")"
    [ "$out/inspect/$name.txt" -nt "$run/model.zip" ] && continue  # inspected since it ended
    fop-rl inspect "$run" --model last --out "$figures/inspect-$name.png" \
      > "$out/inspect/$name.txt"
  done
done
