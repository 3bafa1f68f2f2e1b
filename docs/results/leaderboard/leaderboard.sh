#!/usr/bin/env bash
# The leaderboard of optimizers in PPO (README.md: the design). Run from the repository root of
# a checkout no one edits meanwhile; re-running continues across sessions and machines:
#   1. tune: each of TUNED, 16 trials of 300,000 steps (seed 100), as docs/results/tuning/ did,
#      in rounds of 8; the study's journal and outputs are copied under tuning/<name>/ after
#      every round, and a fresh machine continues from them;
#   2. runs: every label on seeds 40-49, 1,000,000 steps each, two at once, with its tuned
#      values; a finished run's record goes under records/ (a run with a record is skipped).
# PHASES (default: "tune runs") and ONLY (default: every label) pick what runs; HERE, STEPS,
# TRIAL_STEPS and SEEDS only to check the script.
set -uo pipefail
export HERE=${HERE:-docs/results/leaderboard} RUNS=${RUNS:-runs/leaderboard}
export STEPS=${STEPS:-1000000}
TRIAL_STEPS=${TRIAL_STEPS:-300000}
. docs/results/tools/records.sh
TUNED=(adamw lion sf-adamw prodigy soap fop-reset-momentum)
LABELS=(momentum adam fop-momentum "${TUNED[@]}")
SEEDS=${SEEDS:-40 41 42 43 44 45 46 47 48 49}
chosen() { [ -z "${ONLY:-}" ] || [[ " $ONLY " =~ " $1 " ]]; }
export COMMON=""  # every label on the default, compiled path (the design's amendment)

tune_one() {  # tune_one NAME TRIALS
  local name=$1 trials=$2 study=$RUNS/tune/BipedalWalker-v3/$1 kept=$HERE/tuning/$1 f
  mkdir -p "$study" "$kept"
  [ -f "$study/study.journal" ] || { [ -f "$kept/study.journal" ] && cp "$kept/study.journal" "$study/"; }
  # shellcheck disable=SC2086 (COMMON is words)
  /usr/bin/time -f "$name, $trials trials: %e s wall" fop-rl tune --optimizer "$name" \
    --trials "$trials" --timesteps "$TRIAL_STEPS" --seeds 100 --jobs 2 --pruner median \
    --objective final --runs-dir "$RUNS" $COMMON
  for f in best.yaml trials.csv history.png importance.png study.journal; do
    [ -e "$study/$f" ] && cp "$study/$f" "$kept/"
  done
}

tuned_options() {  # the --set items of a label's tuned values (none: the packaged, tuned ones)
  local best=$HERE/tuning/$1/best.yaml
  [ -f "$best" ] || return 0
  python - "$best" "$1" << 'PY'
import sys
import yaml
best, name = sys.argv[1], sys.argv[2]
for key, value in yaml.safe_load(open(best))["optimizers"][name].items():
    print(f"--set optimizers.{name}.{key}={value}")
PY
}
export -f tuned_options

one() {  # one LABEL SEED
  local label=$1 seed=$2 tail=BipedalWalker-v3/$1/seed-$2 options
  local record=$HERE/records/$tail run=$RUNS/runs/$tail
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0  # a clean stop: start nothing new
  options=$(tuned_options "$label")
  # shellcheck disable=SC2086 (the options are words)
  fop-rl sweep --env BipedalWalker-v3 --optimizers "$label" --seeds "$seed" \
    --timesteps "$STEPS" --jobs 1 --runs-dir "$RUNS/runs" $COMMON $options > /dev/null
  keep_record "$run" "$record" "$label seed-$seed"
}
export -f one

for phase in ${PHASES:-tune runs}; do
  case $phase in
    tune)
      for trials in 8 16; do
        for name in "${TUNED[@]}"; do
          chosen "$name" && [ ! -e "$RUNS/STOP" ] && tune_one "$name" "$trials"
        done
      done ;;
    runs)
      for label in "${LABELS[@]}"; do
        chosen "$label" || continue
        [ -f "$HERE/tuning/$label/best.yaml" ] || [[ ! " ${TUNED[*]} " =~ " $label " ]] || {
          echo "$label is not tuned yet: its runs wait" >&2; continue; }
        for seed in $SEEDS; do echo "$label $seed"; done
      done | xargs -P 2 -L 1 bash -c 'one "$@"' _ ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
