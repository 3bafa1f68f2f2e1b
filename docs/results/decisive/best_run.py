"""Of the runs of one or more labels, the one whose last model has the highest mean return over
its final evaluation (final_evaluation.json, 50 deterministic episodes: a well-measured agent,
unlike a best-so-far maximum over 5-episode evaluations). Prints its run directory.

The hard terrain's common start (the best momentum walker) and the hard-terrain agent shown
(report.sh renders it):

    python docs/results/decisive/best_run.py runs/decisive/walker/BipedalWalker-v3/momentum
    python docs/results/decisive/best_run.py runs/decisive/hardcore/BipedalWalkerHardcore-v3/*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    label_dirs = [Path(arg) for arg in sys.argv[1:]]
    scored = []
    for label_dir in label_dirs:
        for final in sorted(label_dir.glob("seed-*/final_evaluation.json")):
            scored.append((json.loads(final.read_text())["mean"], final.parent))
    if not scored:
        print(f"error: no seed-*/final_evaluation.json under {', '.join(sys.argv[1:])}",
              file=sys.stderr)
        sys.exit(2)
    mean, run = max(scored)
    print(f"{run} (final evaluation {mean:.1f}, the best of {len(scored)} runs)", file=sys.stderr)
    print(run)


if __name__ == "__main__":
    main()
