"""How good each complete run's policy is late in training, from its own evaluations: the mean
of its last five 5-episode evaluations (920k-1M steps in a 1M-step run), per seed and the
median over seeds, per label. Unlike the best-so-far (a maximum), it shows a run that lost a
good policy.

    python docs/results/decisive/late.py runs/decisive/walker/BipedalWalker-v3 0-5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fop_rl.rundir import read_status
from fop_rl.sweep import parse_seeds

LAST = 5


def main() -> None:
    env_dir, wanted = Path(sys.argv[1]), parse_seeds(sys.argv[2])
    print("| label | seeds | median over seeds | per seed |\n|---|---|---|---|")
    for label_dir in sorted(p for p in env_dir.iterdir() if p.is_dir()):
        seeds = [s for s in wanted  # complete runs only: a partial one has no late phase yet
                 if (read_status(label_dir / f"seed-{s}") or {}).get("status") == "complete"]
        late = []
        for seed in seeds:
            with np.load(label_dir / f"seed-{seed}" / "evaluations.npz") as ev:
                late.append(float(ev["results"].mean(axis=1)[-LAST:].mean()))
        if late:
            print(f"| {label_dir.name} | {', '.join(map(str, seeds))} | {np.median(late):.1f} | "
                  f"{' / '.join(f'{v:.1f}' for v in late)} |")
    print(f"\nEach run's mean return over its last {LAST} evaluations (5 deterministic episodes "
          "each); the median over the seeds.")


if __name__ == "__main__":
    main()
