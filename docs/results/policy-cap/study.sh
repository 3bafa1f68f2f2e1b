#!/usr/bin/env bash
# The policy-cap study (README.md: the design): momentum, fop-momentum and fop-pcap-momentum
# fine-tune the common start on hardcore-25 and hardcore-38, seeds 0-4, 500k steps per run,
# JOBS runs at once (default 2), seeds in order. A run whose record is committed under records/
# is skipped, so the study continues across sessions; an interrupted run resumes from its
# checkpoint in $RUNS while that folder lasts. Run from the repository root, ideally from a
# worktree no one edits meanwhile.
set -uo pipefail
export HERE=${HERE:-docs/results/policy-cap} RUNS=${RUNS:-runs/policy-cap}
export START=docs/results/starts/walker-momentum-seed-9
export STEPS=${STEPS:-500000}  # per run; smaller only to check the script
jobs=${JOBS:-2}
export KEEP_EIGENVALUES=1  # growth.py reads them
. docs/results/tools/records.sh

runs() {  # one line per run, in the study's order: rung optimizer seed
  for seed in ${SEEDS:-0 1 2 3 4}; do
    for rung in hardcore-25 hardcore-38; do
      for opt in fop-pcap-momentum momentum fop-momentum; do echo "$rung $opt $seed"; done
    done
  done
}

one() {  # train one run (or finish it), then leave its record for committing
  local rung=$1 opt=$2 seed=$3
  local tail=fop_rl-BipedalWalkerTerrain-v0-$rung/$opt/seed-$seed
  local record=$HERE/records/$tail run=$RUNS/$tail
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0  # a clean stop: start nothing new
  fop-rl sweep --terrain "$rung" --optimizers "$opt" --seeds "$seed" --timesteps "$STEPS" \
    --jobs 1 --runs-dir "$RUNS" --init-from "$START" --init-model last > /dev/null
  keep_record "$run" "$record" "$rung $opt seed-$seed"
}
export -f one

runs | xargs -P "$jobs" -L 1 bash -c 'one "$@"' _
