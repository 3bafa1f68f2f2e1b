"""Time the report's bootstrapped statistics: rliable's probability_of_improvement and scipy's
trim_mean (the references) against fop_rl.stats' numpy expressions of the same statistics,
each inside the same rliable stratified bootstrap, in one process.

Each repeat runs both versions of each statistic on the same data and seed, interleaved, so
machine noise hits both alike; ratios are per repeat, then medians. Time is this process's CPU
time. The CIs of the two versions are checked equal on every repeat.

    python benchmarks/report_stats.py [--repeats 5] [--reps 2000] [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from rliable import library as rly
from rliable import metrics
from scipy import stats as scipy_stats

from fop_rl import stats


def interval(function: Callable, scores: dict, reps: int) -> tuple[np.ndarray, float]:
    """rliable's CI of ``function`` with a fixed seed, and the CPU seconds it took."""
    np.random.seed(0)
    start = time.process_time()
    _, ci = rly.get_interval_estimates(scores, function, reps=reps)
    return np.asarray(next(iter(ci.values()))), time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seeds", type=int, default=10, help="runs per label")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(250, 20, (args.seeds, 1)).round(1)
    y = rng.normal(240, 30, (args.seeds, 1)).round(1)
    curves = rng.normal(0, 100, (args.seeds, 1, 50))  # a label's runs on 50 evaluation steps
    cases = {
        "P(improvement)": ({"p": (x, y)}, metrics.probability_of_improvement, stats.improvement),
        "IQM of 50 steps": ({"c": curves},
                            lambda c: scipy_stats.trim_mean(c[:, 0, :], 0.25, axis=0),
                            lambda c: stats.interquartile_mean(c[:, 0, :])),
    }
    for name, (scores, reference, ours) in cases.items():
        ratios, times = [], []
        for _ in range(args.repeats):
            ref_ci, ref_s = interval(reference, scores, args.reps)
            our_ci, our_s = interval(ours, scores, args.reps)
            np.testing.assert_allclose(our_ci, ref_ci, atol=1e-9)
            ratios.append(ref_s / our_s)
            times.append((ref_s, our_s))
        ref_s = statistics.median(t[0] for t in times)
        our_s = statistics.median(t[1] for t in times)
        print(f"{name:16s} {args.reps} resamples of {args.seeds} seeds: reference {ref_s:.2f} s, "
              f"fop_rl.stats {our_s:.2f} s, {statistics.median(ratios):.1f}x faster "
              f"(median of {args.repeats}); CIs equal")


if __name__ == "__main__":
    main()
