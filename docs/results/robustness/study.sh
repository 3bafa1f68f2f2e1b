#!/usr/bin/env bash
# The robustness study (README.md: the design): momentum / fop-momentum over learning rate x
# momentum (3a) and adam / fop-adam over learning rate (3b), seeds 0-2, 500k steps per run,
# JOBS runs at once (default 2), seeds in order. A run whose record is committed under
# records/ is skipped, so the study continues across sessions and machines; an interrupted run
# resumes from its checkpoint in $RUNS while that folder lasts. Run from the repository root,
# ideally from a worktree no one edits meanwhile.
#   bash docs/results/robustness/study.sh            # every run still missing, in order
#   ORDER=reverse JOBS=16 bash ...study.sh           # from the other end (a lent machine)
set -uo pipefail
export HERE=${HERE:-docs/results/robustness} RUNS=${RUNS:-runs/robustness}
export STEPS=${STEPS:-500000}  # per run; smaller only to check the script
jobs=${JOBS:-2}
. docs/results/tools/records.sh

runs() {  # one line per run, in the study's order: grid cell optimizer seed
  for seed in ${SEEDS:-0 1 2}; do
    for m in 0.8 0.9 0.98; do
      for lr in 1e-4 3e-4 1e-3 3e-3 1e-2 3e-2; do
        for opt in momentum fop-momentum; do echo "momentum lr-$lr-m-$m $opt $seed"; done
      done
    done
    for lr in 1e-5 3e-5 1e-4 3e-4 1e-3 3e-3; do
      for opt in adam fop-adam; do echo "adam lr-$lr $opt $seed"; done
    done
  done
}

one() {  # train one run (or finish it), then commit-ready its record
  local grid=$1 cell=$2 opt=$3 seed=$4
  local tail=BipedalWalker-v3/$opt/seed-$seed
  local record=$HERE/records/$grid/$cell/$tail run=$RUNS/$grid/$cell/$tail
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0  # a clean stop: start nothing new (device.sh)
  local lr=${cell#lr-}; lr=${lr%%-m-*}
  local sets=(--set "optimizers.$opt.lr=$lr")
  [ "$grid" = momentum ] && sets+=(--set "optimizers.$opt.momentum=${cell##*-m-}")
  fop-rl sweep --optimizers "$opt" --seeds "$seed" --timesteps "$STEPS" --jobs 1 \
    --runs-dir "$RUNS/$grid/$cell" "${sets[@]}" > /dev/null
  keep_record "$run" "$record" "$grid $cell $opt seed-$seed"
}
export -f one

if [ "${ORDER:-}" = reverse ]; then runs | tac; else runs; fi |
  xargs -P "$jobs" -L 1 bash -c 'one "$@"' _
