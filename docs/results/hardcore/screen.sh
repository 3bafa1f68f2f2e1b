#!/usr/bin/env bash
# The hard-terrain screen (README.md: the design). Phase 1: the zoo's PPO as it is (zoo), with
# the fall penalty 0 (fall0), and with action repeat 3, fall penalty 0 and reward scale 5
# (repeat3), from scratch; phase 2 (PHASE=2 BEST=<arm>): the best phase-1 arm from the walking
# start; the recipe at length (PHASE=length RECIPE=<arm>, or <arm>-from-start): seeds 2-4,
# 20M steps. Otherwise seeds 0-1, 5M PPO steps per run. JOBS runs at once (default 2). A run
# whose record is committed under records/ is skipped; an interrupted run resumes from its
# checkpoint in $RUNS while that folder lasts (it does not outlive a session: start a run only
# with time to end it).
set -uo pipefail
export HERE=${HERE:-docs/results/hardcore} RUNS=${RUNS:-runs/hardcore}
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

runs() {  # one line per run: arm-name base-arm from-start seed
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
  local name=$1 base=$2 from_start=$3 seed=$4
  local tail=BipedalWalkerHardcore-v3/adam/seed-$seed
  local record=$HERE/records/$name/$tail run=$RUNS/$name/$tail
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0  # a clean stop: start nothing new
  local options start=()
  options=$(arm_options "$base") || return 1
  [ "$from_start" = yes ] && start=(--init-from "$START" --init-model last)
  # shellcheck disable=SC2086 (the arm's options are words)
  fop-rl sweep --config "$CONFIG" --optimizers adam --seeds "$seed" --timesteps "$STEPS" \
    --jobs 1 --runs-dir "$RUNS/$name" $options "${start[@]}" > /dev/null
  keep_record "$run" "$record" "$name seed-$seed"
}
export -f one

runs | xargs -P "$jobs" -L 1 bash -c 'one "$@"' _
