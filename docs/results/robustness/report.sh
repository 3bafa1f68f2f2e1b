#!/usr/bin/env bash
# The robustness study's report from its committed records: maps.md and the heat maps.
set -euo pipefail
python docs/results/robustness/report.py docs/results/robustness/records \
  --out docs/results/robustness "$@" > /dev/null
