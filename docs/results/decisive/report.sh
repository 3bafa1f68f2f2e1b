#!/usr/bin/env bash
# Reports of the decisive study so far (runs/decisive): report.json, report.md, curves.csv,
# the figures, the README's tables (tables.md) and late returns (late.md) per terrain, P's
# spectra at the end of the FOP runs, the common start's return on the hard terrain. Safe to
# run while the study runs; an argument (like 0-3) reports only those hard-terrain seeds, the
# complete ones, since partial runs cut every label's common grid short.
set -euo pipefail
runs=runs/decisive
out=docs/results/decisive
seeds=(${1:+--seeds "$1"})
# every label on the same seeds (0-9); the extra seeds of two labels, if any, further below
fop-rl report "$runs/walker" --out "$out/bipedal-walker" --threshold 200 --seeds 0-9
python docs/results/decisive/tables.py "$out/bipedal-walker/report.json" \
  > "$out/bipedal-walker/tables.md"
python docs/results/decisive/late.py "$runs/walker" 0-9 \
  > "$out/bipedal-walker/late.md"
extra=("$runs"/walker/BipedalWalker-v3/*/seed-1[0-9])
if [ -e "${extra[0]}" ]; then
  # the labels that have seeds 10-19, all their seeds, through a folder of links
  both="$runs/walker-seeds-0-19/BipedalWalker-v3"
  rm -rf "$both" && mkdir -p "$both"
  for label in $(printf '%s\n' "${extra[@]}" | xargs -n1 dirname | sort -u); do
    ln -s "$(realpath "$label")" "$both/$(basename "$label")"
  done
  fop-rl report "$runs/walker-seeds-0-19" --out "$out/bipedal-walker-seeds-0-19" --threshold 200
  # seeds 10-19 alone: the FOP label was chosen on seeds 0-9, so only these test it unbiased
  fop-rl report "$runs/walker-seeds-0-19" --out "$out/bipedal-walker-seeds-10-19" \
    --threshold 200 --seeds 10-19
fi
if [ -d "$runs/hardcore" ]; then
  # the start the fine-tunes recorded (best_run.py's choice when the walker part ended)
  start=$(python -c "import glob, json; print(json.load(open(sorted(glob.glob(
    '$runs/hardcore/*/*/seed-*/run.json'))[0]))['init_from']['run_dir'])")
  fop-rl evaluate "$start" --model last --env BipedalWalkerHardcore-v3 --episodes 50 --json \
    > "$out/hardcore-finetune-start.json"
  mean=$(python -c "import json; print(round(json.load(open('$out/hardcore-finetune-start.json'))['mean'], 1))")
  fop-rl report "$runs/hardcore" --out "$out/hardcore-finetune" --threshold 0 \
    --reference "common start=$mean" "${seeds[@]}"
  python docs/results/decisive/tables.py "$out/hardcore-finetune/report.json" \
    > "$out/hardcore-finetune/tables.md"
  python docs/results/decisive/late.py "$runs/hardcore" "${1:-0-4}" \
    > "$out/hardcore-finetune/late.md"
  # the hard-terrain agent shown: the run whose last model has the best final evaluation
  if best=$(python docs/results/decisive/best_run.py "$runs"/hardcore/*/*); then
    gif="$out/hardcore-finetune/best-agent.gif"
    rm -f "$gif"  # this script's own figure, made again
    fop-rl render "$best" --model last --out "$gif" --fps 12 --scale 0.4 \
      > "$out/hardcore-finetune/best-agent.txt"
    echo "run: $best" >> "$out/hardcore-finetune/best-agent.txt"
  fi
fi
for terrain in walker hardcore; do  # the FOP labels' own folders, not the links of seeds 0-19
  bash docs/results/tools/inspect.sh "$out" "$runs" "$terrain-" "$runs/$terrain"/*/fop-*
done
python docs/results/tools/spectra.py "$out/inspect" > "$out/spectra.md"
