"""The presets' difficulty table (markdown) from presets.sh's evaluations.

    python docs/results/terrains/presets_table.py docs/results/terrains/presets
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fop_rl.terrain import presets


def main() -> None:
    folder = Path(sys.argv[1])
    print("| preset | parameters | mean return [95% CI] | std | median | episodes above 0 | "
          "mean length |")
    print("|---|---|---|---|---|---|---|")
    for name, parameters in presets().items():
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        returns = np.array(result["returns"])
        rng = np.random.default_rng(0)  # a percentile bootstrap of the mean
        means = rng.choice(returns, (10_000, len(returns))).mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        shown = ", ".join(f"{k}: {v}" for k, v in parameters.items()) or "(none: plain)"
        print(f"| {name} | {shown} | {returns.mean():.1f} [{low:.1f}, {high:.1f}] | "
              f"{returns.std():.1f} | {np.median(returns):.1f} | {int(np.sum(returns > 0))} of "
              f"{len(returns)} | {np.mean(result['lengths']):.0f} |")


if __name__ == "__main__":
    main()
