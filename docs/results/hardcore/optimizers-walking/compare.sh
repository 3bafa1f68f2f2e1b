#!/usr/bin/env bash
# The optimizers compared where PPO walks (README.md: the design): momentum, fop-momentum and
# fop-pcap-momentum with the hard-terrain recipe as packaged (compiled), seeds 15-17, 20M PPO
# steps, JOBS runs at once (default 2), seed-major; adam's arm is mastery/'s length stage. A run
# whose record is committed under records/ is skipped; an interrupted run resumes from its
# checkpoint in $RUNS while that folder lasts; $RUNS/STOP starts nothing new. Each finished run's
# last model is scored on episodes 1000-1099 into its record. STEPS and EPISODES only to check the script.
set -uo pipefail
export HERE=docs/results/hardcore/optimizers-walking RUNS=${RUNS:-runs/optimizers-walking}
export STEPS=${STEPS:-20000000} EPISODES=${EPISODES:-100}
export CONFIG=configs/bipedal_walker_hardcore_recipe.yaml
. docs/results/tools/records.sh

optimizer_options() {  # README.md's settings; one argument per line
  case $1 in
    momentum) printf '%s\n' --set "optimizers.momentum={lr: 1.646e-3, momentum: 0.98}" ;;
    fop-momentum) printf '%s\n' --set "optimizers.fop-momentum={lr: 8.96e-4, momentum: 0.87, \
hyper_lr: 2.2e-4, hyper_optimizer: adam}" ;;
    fop-pcap-momentum) printf '%s\n' --set "optimizers.fop-pcap-momentum={lr: 8.96e-4, \
momentum: 0.87, hyper_lr: 2.2e-4, hyper_optimizer: adam, max_eigenvalue: 5.0}" ;;
    *) echo "unknown optimizer $1" >&2; return 1 ;;
  esac
}
export -f optimizer_options

one() {
  local optimizer=$1 seed=$2 options
  local tail=BipedalWalkerHardcore-v3/$optimizer/seed-$seed
  local record=$HERE/records/$tail run=$RUNS/$tail
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0
  mapfile -t options < <(optimizer_options "$optimizer") || return 1
  fop-rl sweep --config "$CONFIG" --optimizers "$optimizer" --seeds "$seed" --timesteps "$STEPS" \
    --jobs 1 --runs-dir "$RUNS" "${options[@]}" > /dev/null
  if [ -e "$run/final_evaluation.json" ] && [ ! -e "$run/last_model_scores.json" ]; then
    fop-rl evaluate "$run" --model last --episodes "$EPISODES" --backend gymnasium --seed 1000 \
      --json > "$run/last_model_scores.json.part" && \
      mv "$run/last_model_scores.json.part" "$run/last_model_scores.json" || return 1
  fi
  [ -e "$run/last_model_scores.json" ] && mkdir -p "$record" && \
    cp "$run/last_model_scores.json" "$record/"
  keep_record "$run" "$record" "$optimizer seed-$seed"
}
export -f one

for seed in 15 16 17; do
  for optimizer in momentum fop-momentum fop-pcap-momentum; do echo "$optimizer $seed"; done
done | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
