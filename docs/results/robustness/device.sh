#!/usr/bin/env bash
# The robustness study on a lent 16-core machine (the `device` tool): study.sh from the far end
# of its order, JOBS runs at once, for STOP_AFTER seconds (default 400); then every run still
# training is stopped, with a checkpoint where it answers within a minute. Into $OUT:
# records.tgz (the complete runs' records, as study.sh writes them; refreshed every 10 s),
# partial.tgz.* (the stopped runs' folders with their latest checkpoint, to finish on this
# machine), study.log, versions.txt. The machine has Python and torch; the
# other packages come from .site/site.tgz (wheels unpacked there; envpool slimmed to its
# box2d family, which is all the walker needs).
set -uo pipefail
start=$(date +%s)
tar xzf .site/site.tgz -C /tmp && export PYTHONPATH=/tmp/site:$PWD
fop-rl() { python3 -m fop_rl.cli "$@"; }
export -f fop-rl
python3 -c "import envpool, stable_baselines3, fop_rl.train" || exit 3
python3 -c "import sys, torch, stable_baselines3 as s, gymnasium as g, envpool as e
print(sys.version.split()[0], torch.__version__, s.__version__, g.__version__, e.__version__)" \
  | tee "$OUT/versions.txt"
nproc >> "$OUT/versions.txt"
export HERE=/tmp/study RUNS=/tmp/runs ORDER=reverse JOBS=${JOBS:-16}
mkdir -p "$RUNS"
bash docs/results/robustness/study.sh > "$OUT/study.log" 2>&1 &
study=$!
save() { [ -d "$HERE/records" ] && tar czf "$OUT/records.tgz" -C "$HERE" records; }
while kill -0 "$study" 2> /dev/null && (( $(date +%s) - start < ${STOP_AFTER:-400} )); do
  sleep 10
  save  # as runs complete: what is in $OUT comes back even if the call runs out of time
done
touch "$RUNS/STOP"
pkill -TERM -f "fop_rl.cli train"  # each run checkpoints, then exits (a run still compiling
sleep 60                           # answers late: the first lease lost everything waiting)
pkill -KILL -f "fop_rl.cli"
echo "stopped after $(( $(date +%s) - start )) s" >> "$OUT/study.log"
save
cd "$RUNS" && find . -name run.json -path "*seed-*" | while read -r status; do
  run=$(dirname "$status")
  grep -q '"status": "interrupted"' "$status" || continue
  latest=$(cat "$run/checkpoints/latest" 2> /dev/null) || continue
  printf '%s\n' "$run/config.yaml" "$run/run.json" "$run/evaluations.npz" "$run/monitor" \
    "$run/tb" "$run/checkpoints/latest" "$run/checkpoints/$latest"
done | tar czf - --ignore-failed-read -T - 2> /dev/null | split -b 15M - "$OUT/partial.tgz."
ls -la "$OUT"
