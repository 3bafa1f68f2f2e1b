#!/usr/bin/env bash
# The mastery screen (README.md: the design): every arm of ARMS (default: all, in order), seeds
# 10 and 11, 20M PPO steps each, JOBS runs at once (default 2; both seeds of an arm together).
# STAGE=length: the chosen recipe as packaged (arm `length`) on seeds 12-14, three at once.
# A run whose record is committed under records/ is skipped; an interrupted run resumes from its
# checkpoint in $RUNS while that folder lasts. STEPS only to check the script.
set -uo pipefail
export HERE=docs/results/hardcore/mastery RUNS=${RUNS:-runs/mastery}
export STEPS=${STEPS:-20000000}
export CONFIG=configs/bipedal_walker_hardcore_recipe.yaml
. docs/results/tools/records.sh

arm_options() {  # the arm's change of the recipe
  case $1 in
    recipe) echo "--set ppo.batch_size=64 --set ppo.n_epochs=10 --set ppo.gamma=0.99" ;;  # the screen's base
    length) ;;  # the recipe as packaged after the screen
    wide) echo "$(arm_options recipe) --set ppo.net_arch=[256,256]" ;;
    bigbatch) echo "$(arm_options recipe) --set ppo.batch_size=512 --set ppo.n_epochs=5" ;;
    gamma) echo "$(arm_options bigbatch) --set ppo.gamma=0.995" ;;  # amended: on bigbatch
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
}
export -f arm_options

one() {
  local arm=$1 seed=$2
  local tail=BipedalWalkerHardcore-v3/adam/seed-$seed
  local record=$HERE/records/$arm/$tail run=$RUNS/$arm/$tail options
  [ -e "$record/run.json" ] && return 0
  [ -e "$RUNS/STOP" ] && return 0  # a clean stop: start nothing new
  options=$(arm_options "$arm") || return 1
  # shellcheck disable=SC2086 (the arm's options are words)
  fop-rl sweep --config "$CONFIG" --optimizers adam --seeds "$seed" --timesteps "$STEPS" \
    --jobs 1 --runs-dir "$RUNS/$arm" --set training.keep_checkpoints=0 $options > /dev/null
  keep_record "$run" "$record" "$arm seed-$seed"
}
export -f one

if [ "${STAGE:-screen}" = length ]; then
  for seed in 12 13 14; do echo "length $seed"; done | xargs -P "${JOBS:-3}" -L 1 bash -c 'one "$@"' _
  exit
fi
for arm in ${ARMS:-recipe wide bigbatch gamma}; do
  for seed in 10 11; do echo "$arm $seed"; done
done | xargs -P "${JOBS:-2}" -L 1 bash -c 'one "$@"' _
