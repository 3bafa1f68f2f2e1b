#!/usr/bin/env bash
# The screen's report from its committed records: screen.md (the design's table and rule),
# length.md (the recipe at length) and report/ (fop-rl report with the arms as labels: curves,
# steps to a return of 0, P(improvement) against the zoo's settings as they are); compare/, once
# the optimizers are compared with the recipe.
set -euo pipefail
HERE=docs/results/hardcore
python "$HERE/screen.py" "$HERE/records" > "$HERE/screen.md"
python "$HERE/length.py" "$HERE/records" > "$HERE/length.md"
view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
for run in "$HERE"/records/*/BipedalWalkerHardcore-v3/adam/seed-*; do
  arm=${run#"$HERE/records/"}
  arm=${arm%%/*}
  [[ $arm == *-compare ]] && continue
  mkdir -p "$view/BipedalWalkerHardcore-v3/$arm"
  ln -s "$(realpath "$run")" "$view/BipedalWalkerHardcore-v3/$arm/${run##*/}"
done
fop-rl report "$view" --out "$HERE/report" --threshold 0 --baseline zoo > /dev/null
# the optimizers compared with the recipe, against momentum and adam (the decisive study's reading)
for compared in "$HERE"/records/*-compare; do
  [ -d "$compared" ] || continue
  fop-rl report "$compared" --out "$HERE/compare" --threshold 0 > /dev/null
done
