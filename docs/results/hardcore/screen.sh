#!/usr/bin/env bash
# The hard-terrain screen (README.md: the design). Phase 1: the zoo's PPO as it is (zoo), with
# the fall penalty 0 (fall0), and with action repeat 3, fall penalty 0 and reward scale 5
# (repeat3), from scratch; phase 2 (PHASE=2 BEST=<arm>): the best phase-1 arm from the walking
# start; the recipe at length (PHASE=length RECIPE=<arm>, or <arm>-from-start): seeds 2-4,
# 20M steps; the optimizers compared with the recipe (PHASE=compare RECIPE=<arm> STEPS=<the
# budget>): momentum, adam and fop-momentum, seeds 5-7. Otherwise seeds 0-1, 5M PPO steps per
# run. JOBS runs at once (default 2). A run
# whose record is committed under records/ is skipped; an interrupted run resumes from its
# checkpoint in $RUNS while that folder lasts (it does not outlive a session: start a run only
# with time to end it).
set -uo pipefail
export HERE=${HERE:-docs/results/hardcore} RUNS=${RUNS:-runs/hardcore}
STEPS_SET=${STEPS:-}
[ "${PHASE:-1}" = length ] && default_steps=20000000 || default_steps=5000000
export STEPS=${STEPS:-$default_steps}  # per run; smaller only to check the script
export CONFIG=configs/recipes/bipedal_walker_hardcore_zoo.yaml
export START=docs/results/starts/walker-momentum-seed-9
jobs=${JOBS:-2}
. docs/results/tools/records.sh

arm_options() {  # the arm's settings on top of the zoo's
  case $1 in
    zoo) ;;
    fall0) echo "--set env.fall_penalty=0" ;;
    repeat3) echo "--set env.action_repeat=3 --set env.fall_penalty=0 --set env.reward_scale=5" ;;
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
}
export -f arm_options

optimizer_options() {  # the compared optimizers' tuned settings (configs/bipedal_walker.yaml),
  # learning rates scaled by the recipe's Adam over the tuned Adam's, 2.5e-4 / 1.2e-4: one
  # argument per line
  case $1 in
    adam) ;;
    momentum) printf '%s\n' --set "optimizers.momentum={lr: 1.646e-3, momentum: 0.98}" ;;
    fop-momentum) printf '%s\n' --set "optimizers.fop-momentum={lr: 8.96e-4, momentum: 0.87, \
hyper_lr: 2.2e-4, hyper_optimizer: adam}" ;;
    *) echo "unknown optimizer $1" >&2; return 1 ;;
  esac
}
export -f optimizer_options

runs() {  # one line per run: arm-name base-arm from-start seed [optimizer]
  if [ "${PHASE:-1}" = compare ]; then
    local recipe=${RECIPE:?PHASE=compare needs RECIPE=<arm> or <arm>-from-start}
    local base=${recipe%-from-start} from=no
    [ "$base" != "$recipe" ] && from=yes
    [ -n "${STEPS_SET:-}" ] || { echo "PHASE=compare needs STEPS=<the budget>" >&2; return 1; }
    for seed in 5 6 7; do
      for optimizer in momentum adam fop-momentum; do
        echo "$recipe-compare $base $from $seed $optimizer"
      done
    done
    return
  fi
  if [ "${PHASE:-1}" = length ]; then
    local recipe=${RECIPE:?PHASE=length needs RECIPE=<arm> or <arm>-from-start}
    local base=${recipe%-from-start} from=no
    [ "$base" != "$recipe" ] && from=yes
    for seed in 2 3 4; do echo "$recipe-length $base $from $seed"; done
    return
  fi
  for seed in 0 1; do
    if [ "${PHASE:-1}" = 2 ]; then
      echo "${BEST:?PHASE=2 needs BEST=<arm>}-from-start $BEST yes $seed"
    else
      for arm in zoo fall0 repeat3; do echo "$arm $arm no $seed"; done
    fi
  done
}

one() {
  local name=$1 base=$2 from_start=$3 seed=$4 optimizer=${5:-adam}
  local tail=BipedalWalkerHardcore-v3/$optimizer/seed-$seed
  local record=$HERE/records/$name/$tail run=$RUNS/$name/$tail
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0  # a clean stop: start nothing new
  local options start=()
  options=$(arm_options "$base") || return 1
  local -a tuned
  optimizer_options "$optimizer" > /dev/null || return 1
  mapfile -t tuned < <(optimizer_options "$optimizer")
  [ "$from_start" = yes ] && start=(--init-from "$START" --init-model last)
  # the comparison on SB3's own PPO (README: the compiled gradient's open learning question)
  [[ $name == *-compare ]] && tuned+=(--set ppo.compile=false)
  # shellcheck disable=SC2086 (the arm's options are words)
  fop-rl sweep --config "$CONFIG" --optimizers "$optimizer" --seeds "$seed" --timesteps "$STEPS" \
    --jobs 1 --runs-dir "$RUNS/$name" $options "${start[@]}" "${tuned[@]}" > /dev/null
  keep_record "$run" "$record" "$name seed-$seed"
}
export -f one

runs | xargs -P "$jobs" -L 1 bash -c 'one "$@"' _
