#!/usr/bin/env bash
# Sourced by the studies' scripts: keep a finished run's record for committing, so that a study
# continues across sessions and machines and its report reads the records alone.

# keep_record RUN RECORD LABEL: if RUN is complete or failed, copy its config.yaml,
# evaluations.npz, final_evaluation.json and (last: a record holding run.json is whole) run.json
# into RECORD; with KEEP_EIGENVALUES=1 also tb/progress.csv's steps and FOP's per-layer largest
# eigenvalues (what growth.py reads). Prints a line naming LABEL.
keep_record() {
  local run=$1 record=$2 label=$3 status f
  status=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['status'])" \
    "$run/run.json" 2> /dev/null)
  [ "$status" = complete ] || [ "$status" = failed ] || return 0
  mkdir -p "$record"
  for f in config.yaml evaluations.npz final_evaluation.json; do
    [ -e "$run/$f" ] && cp "$run/$f" "$record/"
  done
  if [ -n "${KEEP_EIGENVALUES:-}" ] && [ -e "$run/tb/progress.csv" ]; then
    mkdir -p "$record/tb"
    python - "$run/tb/progress.csv" "$record/tb/progress.csv" << 'PY'
import csv, sys
with open(sys.argv[1]) as f:
    rows = list(csv.DictReader(f))
keys = ["time/total_timesteps"] + [k for k in (rows[0] if rows else {}) if k.endswith("/eig_max")]
with open(sys.argv[2], "w", newline="") as f:
    writer = csv.DictWriter(f, keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
PY
  fi
  cp "$run/run.json" "$record/"
  echo "$(date -u +%FT%TZ) $label $status"
}
export -f keep_record
