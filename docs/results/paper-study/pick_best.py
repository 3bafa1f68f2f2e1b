"""Print the tuning value whose runs reached the highest mean final best-so-far return.

    python docs/results/paper-study/pick_best.py runs/tuning/momentum-lr*   ->  prints e.g. 5.0e-3

Each argument is a runs directory named <optimizer>-<param><value> that `fop-rl report` has
summarised (its report/report.json): the value is the part after the last "lr".
"""

import json
import sys
from pathlib import Path

scores = {}
for folder in map(Path, sys.argv[1:]):
    summary = json.loads((folder / "report" / "report.json").read_text())
    (labels,) = summary.values()
    (entry,) = labels.values()
    value = folder.name.rsplit("lr", 1)[1]
    scores[value] = entry["final"]["mean"]
    print(f"{folder.name}: mean final best-so-far {entry['final']['mean']:.1f} "
          f"(median {entry['final']['median']:.1f}, {entry['seeds']} seeds)", file=sys.stderr)
print(max(scores, key=scores.get))
