"""How good each complete run's policy is late in training, from its own evaluations: the mean
of its last five 5-episode evaluations (920k-1M steps in a 1M-step run), per seed and the
median over seeds, per label. Unlike the best-so-far (a maximum), it shows a run that lost a
good policy.

    python docs/results/decisive/late.py runs/decisive/walker 0-5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fop_rl.report import find_runs
from fop_rl.sweep import parse_seeds

LAST = 5


def main() -> None:
    runs_dir, wanted = Path(sys.argv[1]), set(parse_seeds(sys.argv[2]))
    late: dict[tuple[str, str], dict[int, float]] = {}
    for run in find_runs(runs_dir)[0]:
        if run.seed in wanted and run.complete:  # a partial run has no late phase yet
            late.setdefault((run.env_id, run.label), {})[run.seed] = run.returns[-LAST:].mean()
    print("| environment | label | seeds | median over seeds | per seed |\n|---|---|---|---|---|")
    for (env_id, label), values in sorted(late.items()):
        seeds = sorted(values)
        print(f"| {env_id} | {label} | {', '.join(map(str, seeds))} | "
              f"{np.median(list(values.values())):.1f} | "
              f"{' / '.join(f'{values[s]:.1f}' for s in seeds)} |")
    print(f"\nEach run's mean return over its last {LAST} evaluations (5 deterministic episodes "
          "each); the median over the seeds.")


if __name__ == "__main__":
    main()
