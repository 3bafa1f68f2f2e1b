#!/usr/bin/env bash
# The speed benchmarks, on a machine with nothing else running; their outputs are committed.
set -euo pipefail
python benchmarks/optimizer_step.py --repeats 7 --steps 300 \
  | tee docs/results/speed/benchmarks/optimizer_step.txt
python benchmarks/optimizer_step.py --repeats 5 --steps 300 --widths 64 2 --no-mlp \
  | tee docs/results/speed/benchmarks/optimizer_step-widths.txt
python benchmarks/throughput.py --vec-env both | tee docs/results/speed/benchmarks/throughput.txt
python benchmarks/terrain_speed.py --repeats 9 --steps 5000 \
  | tee docs/results/speed/benchmarks/terrain_speed.txt
python benchmarks/compiled_update.py --repeats 7 | tee docs/results/speed/benchmarks/compiled_update.txt
(python benchmarks/fop_step_compiled.py --repeats 5 --steps 300 \
  && python benchmarks/fop_step_compiled.py --repeats 5 --steps 300 --cpp-wrapper) \
  | tee docs/results/speed/benchmarks/fop_step_compiled.txt
python benchmarks/train_startup.py --repeats 5 | tee docs/results/speed/benchmarks/train_startup.txt
# before/after: BEFORE names a checkout of an older commit (6c5ab44 here, before #23)
python benchmarks/cli_startup.py --repeats 5 ${BEFORE:+--before "$BEFORE"} \
  | tee docs/results/speed/benchmarks/cli_startup.txt
if [ -n "${BEFORE:-}" ]; then
  python benchmarks/whole_runs.py --before "$BEFORE" --timesteps 49152 --repeats 3 \
    | tee docs/results/speed/benchmarks/whole_runs.txt
  (cd "$BEFORE" && PYTHONPATH=. python benchmarks/optimizer_step.py --repeats 7 --steps 300) \
    | tee docs/results/speed/benchmarks/optimizer_step-before.txt
fi
echo "benchmarks finished: $(date -u +%FT%TZ)"
