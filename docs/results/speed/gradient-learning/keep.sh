#!/usr/bin/env bash
# Keep the finished runs of a check for committing, so that it continues in another session:
# every complete run under RUNS/<variant>/BipedalWalker-v3/<optimizer>/seed-N gets its record
# (config.yaml, evaluations.npz, final_evaluation.json, run.json) under RECORDS with the same
# layout. report.sh reads RECORDS as it reads RUNS; to continue the check elsewhere, copy RECORDS
# into RUNS first (the sweep skips complete runs) and run run.sh again.
#   RUNS=runs/gradient-learning-settled RECORDS=docs/results/speed/gradient-learning/records-settled \
#     bash docs/results/speed/gradient-learning/keep.sh
set -euo pipefail
. docs/results/tools/records.sh
for run in "${RUNS:?}"/*/BipedalWalker-v3/*/seed-*; do
  [ -d "$run" ] || continue
  tail=${run#"$RUNS"/}
  [ -e "${RECORDS:?}/$tail/run.json" ] || keep_record "$run" "$RECORDS/$tail" "$tail"
done
