"""The common start of the hard-terrain fine-tuning: of a label's walker runs, the one whose
last model has the highest mean return over its final evaluation (final_evaluation.json, 50
deterministic episodes: a well-measured walker, unlike a best-so-far maximum over 5-episode
evaluations). Prints its run directory.

    python docs/results/decisive/pick_start.py runs/decisive/walker/BipedalWalker-v3/momentum
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    label_dir = Path(sys.argv[1])
    scored = []
    for final in sorted(label_dir.glob("seed-*/final_evaluation.json")):
        scored.append((json.loads(final.read_text())["mean"], final.parent))
    if not scored:
        sys.exit(f"error: no seed-*/final_evaluation.json under {label_dir}")
    mean, run = max(scored)
    print(f"{run} (final evaluation {mean:.1f}, the best of {len(scored)} seeds)", file=sys.stderr)
    print(run)


if __name__ == "__main__":
    main()
