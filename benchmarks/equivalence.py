"""Is EnvPool's walker the same task as gymnasium's? One policy, many episodes on each backend.

Evaluates a run's model deterministically on ``--episodes`` episodes per backend (seeded as
``fop-rl evaluate`` seeds them) and compares mean returns: the 95% percentile-bootstrap CI of
the difference (envpool - gymnasium) should contain 0. Terrains come from each backend's own
random generator, so the comparison is between distributions, not episode by episode.

    python benchmarks/equivalence.py RUN_DIR [--episodes 100] [--model best] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from fop_rl.evaluate import evaluate


def difference_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    ci = stats.bootstrap((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                         confidence_level=level, n_resamples=10_000, method="percentile",
                         random_state=np.random.default_rng(0)).confidence_interval
    return float(ci.low), float(ci.high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--model", choices=("best", "last"), default="best")
    parser.add_argument("--json", type=Path, help="write the returns and the summary here")
    args = parser.parse_args()
    results = {backend: evaluate(args.run_dir, args.episodes, args.model, backend)
               for backend in ("gymnasium", "envpool")}
    returns = {b: np.array(r["returns"]) for b, r in results.items()}
    for backend, r in returns.items():
        lengths = results[backend]["lengths"]
        print(f"{backend:9s} mean {r.mean():7.1f} (std {r.std():5.1f}), median "
              f"{np.median(r):7.1f}, falls {np.mean(r < -50):.0%}, mean length "
              f"{np.mean(lengths):.0f}")
    low, high = difference_ci(returns["envpool"], returns["gymnasium"])
    difference = returns["envpool"].mean() - returns["gymnasium"].mean()
    verdict = "contains 0" if low <= 0 <= high else "EXCLUDES 0"
    print(f"difference of means (envpool - gymnasium) {difference:.1f}, 95% CI "
          f"[{low:.1f}, {high:.1f}]: {verdict}")
    if args.json:
        summary = {"run_dir": str(args.run_dir), "episodes": args.episodes,
                   "difference": difference, "ci95": [low, high],
                   "results": results}
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
