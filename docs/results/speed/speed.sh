#!/usr/bin/env bash
# EnvPool and side-by-side evaluation: equivalence and speed, on a machine with nothing else
# running (the benchmarks use both cores); outputs in docs/results/speed/.
set -euo pipefail
out=docs/results/speed
# a walking policy trained on the reference simulator (about 8 minutes of one core)
fop-rl train --optimizer momentum --seed 0 --timesteps 500000 --no-progress \
  --set env.backend=gymnasium --run-dir runs/equivalence/momentum-gymnasium
python benchmarks/equivalence.py runs/equivalence/momentum-gymnasium --episodes 100 \
  --json $out/equivalence.json | tee $out/equivalence.txt
python benchmarks/pipeline.py --timesteps 100000 --repeats 3 \
  --walker runs/equivalence/momentum-gymnasium | tee $out/pipeline.txt
python benchmarks/pipeline.py --timesteps 300000 --repeats 2 \
  --walker runs/equivalence/momentum-gymnasium | tee $out/pipeline-300k.txt
python benchmarks/throughput.py --backend envpool | tee $out/throughput-envpool.txt
python benchmarks/update_profile.py | tee $out/update-profile.txt
echo "speed benchmarks finished: $(date -u +%FT%TZ)"
