#!/usr/bin/env bash
# The policy-cap study's reports from its committed records: per rung (fop-rl report against
# momentum and fop-momentum), the pre-registered test (verdict.md) and P's growth in each FOP
# arm (growth.md, growth-fop-pcap-momentum.md). SEEDS (default 0-4) limits them to the seeds
# complete.
set -euo pipefail
seeds=${1:-0-4}
here=docs/results/policy-cap
fop-rl report "$here/records" --out "$here/report" --seeds "$seeds" \
  --baseline momentum --baseline fop-momentum > /dev/null
python "$here/verdict.py" "$here/records" --out "$here" --seeds "$seeds" > /dev/null
for label in fop-momentum fop-pcap-momentum; do
  python docs/results/terrains/growth.py "$here/records" --out "$here" --label "$label"
done
