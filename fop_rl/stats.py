"""Statistics over seeds, as small pure functions over arrays.

The median across seeds and its percentile-bootstrap CI come from scipy.stats.bootstrap (rliable's
``aggregate_median`` is the median over tasks of per-task means: with one environment, a mean).
IQM and probability of improvement are rliable's definitions with its stratified bootstrap;
each resample's statistic is one numpy expression (tests hold them equal to rliable's and
scipy's own functions, which cost milliseconds a call: minutes over a study's resamples).
Every bootstrap draws from a generator seeded by the caller, so a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats


def best_so_far(returns: np.ndarray) -> np.ndarray:
    """The return of the best policy seen so far, at each evaluation (paper figure 4)."""
    return np.maximum.accumulate(returns)


def on_grid(timesteps: Sequence[np.ndarray], curves: Sequence[np.ndarray]) -> tuple[np.ndarray,
                                                                                     np.ndarray]:
    """Seeds' step curves on a common grid: the union of their evaluation steps from the first
    step every seed has evaluated to the last step every seed has reached.

    Each curve holds its last value between evaluations (a best-so-far curve is a step
    function). Returns ``(grid, values)`` with values of shape (n_seeds, len(grid)).
    """
    start = max(int(t[0]) for t in timesteps)
    end = min(int(t[-1]) for t in timesteps)
    grid = np.unique(np.concatenate([t[(t >= start) & (t <= end)] for t in timesteps]))
    values = np.stack([c[np.searchsorted(t, grid, side="right") - 1]
                       for t, c in zip(timesteps, curves, strict=True)])
    return grid, values


def median_ci(values: np.ndarray, level: float, reps: int, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median across seeds (axis 0) with its percentile-bootstrap CI, per column."""
    values = np.asarray(values, dtype=float)
    median = np.median(values, axis=0)
    if values.shape[0] < 2 or np.all(values == values[0]):  # nothing to resample
        return median, median.copy(), median.copy()
    result = scipy_stats.bootstrap((values,), np.median, axis=0, vectorized=True,
                                   confidence_level=level, n_resamples=reps,
                                   method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return median, np.minimum(low, median), np.maximum(high, median)


def _rliable():
    from rliable import library as rly

    return rly


def interquartile_mean(x: np.ndarray) -> np.ndarray:
    """scipy.stats.trim_mean(x, 0.25, axis=0) (rliable's aggregate_iqm, per column) without
    scipy's per-call overhead, which dominates thousands of bootstrap resamples."""
    cut = int(0.25 * x.shape[0])
    return np.sort(x, axis=0)[cut:x.shape[0] - cut].mean(axis=0)


def improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's probability_of_improvement of scores (runs, tasks): per task, the share of
    (x, y) pairs where x is higher, ties half (Mann-Whitney U / (n_x n_y)), averaged over tasks;
    in one numpy expression rather than a scipy test per task and resample."""
    x, y = x[:, None, :], y[None, :, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def iqm_ci(values: np.ndarray, level: float, reps: int, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interquartile mean across seeds with rliable's stratified-bootstrap CI, per column."""
    rly = _rliable()
    scores = np.asarray(values, dtype=float)[:, None, :]  # (runs, tasks=1, steps)

    def iqm(x: np.ndarray) -> np.ndarray:
        return interquartile_mean(x[:, 0, :])

    np.random.seed(seed)  # rliable resamples with numpy's global generator
    point, interval = rly.get_interval_estimates({"x": scores}, iqm, reps=reps,
                                                 confidence_interval_size=level)
    return point["x"], interval["x"][0], interval["x"][1]


def probability_of_improvement(x: np.ndarray, y: np.ndarray, level: float, reps: int,
                               seed: int = 0) -> tuple[float, float, float]:
    """P(a run of x scores above a run of y), ties half (Mann-Whitney U / (n_x n_y)), with
    rliable's stratified-bootstrap CI."""
    rly = _rliable()
    pair = (np.asarray(x, float)[:, None], np.asarray(y, float)[:, None])
    np.random.seed(seed)
    point, interval = rly.get_interval_estimates({"p": pair}, improvement, reps=reps,
                                                 confidence_interval_size=level)
    return float(point["p"]), float(interval["p"][0][0]), float(interval["p"][1][0])


def steps_to_threshold(grid: np.ndarray, curve: np.ndarray, threshold: float) -> int | None:
    """First grid step where ``curve`` reaches ``threshold``, or None."""
    reached = np.flatnonzero(curve >= threshold)
    return int(grid[reached[0]]) if reached.size else None


def mean_ci(values: Sequence[float], level: float = 0.95, reps: int = 10_000, seed: int = 0
            ) -> tuple[float, float, float]:
    """The mean of one set of scores (an agent's episodes) with its percentile-bootstrap CI."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2 or np.all(values == values[0]):
        return mean, mean, mean
    result = scipy_stats.bootstrap((values,), np.mean, vectorized=True, confidence_level=level,
                                   n_resamples=reps, method="percentile",
                                   rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return mean, float(min(low, mean)), float(max(high, mean))


def paired_win(x: Sequence[float], y: Sequence[float], level: float = 0.95, reps: int = 10_000,
               seed: int = 0) -> tuple[float, float, float]:
    """P(x scores above y on the same episode), ties half, with a percentile-bootstrap CI over
    episodes (x[i] and y[i]: two agents on the same episode, resampled together)."""
    wins = np.asarray(x, float) > np.asarray(y, float)
    wins = wins + 0.5 * (np.asarray(x, float) == np.asarray(y, float))
    return mean_ci(wins, level, reps, seed)
