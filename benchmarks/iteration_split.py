"""Where a whole walker run's iteration goes, per optimizer: the real training run
(``fop_rl.train.train`` on the packaged walker config, compiled path as packaged, evaluations,
checkpoints and P images out of the way as in whole_runs.py), with its parts timed in CPU time.

Each part is the main thread's CPU time (``time.thread_time``: a busy machine's waits do not
count) inside the methods a PPO iteration calls: the rollout loop (``collect_rollouts`` less
the callbacks it calls), the callbacks at each env step and at the rollout's end (where FOP's
diagnostics are), the update (``train``), and the logger's dump (TensorBoard); ``other`` is the
rest of the iteration. ``process`` is the whole process's CPU (EnvPool's threads too). Runs of
the optimizers alternate, in reverse order every other repeat. Per run, the median iteration
after the first (which compiles), and apart, the costliest iteration's excess over it (a FOP
run draws P's heatmap once at its first update's rollout end, then every
``diagnostics_image_every`` rollouts); medians over repeats.

    python benchmarks/iteration_split.py [--config FILE] [--iterations 12] [--repeats 3]
                                         [--optimizers momentum fop-momentum]

``--config``: another config, for example the hard-terrain recipe's (default: the packaged
walker's).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger
from throughput import in_turn  # beside this
from whole_runs import QUIET

from fop_rl import config
from fop_rl.compiled import CompiledPPO
from fop_rl.train import train

PARTS = ("rollout loop", "callbacks per step", "callbacks at rollout end", "update",
         "logger dump", "other")


class Split:
    """Thread CPU seconds per part, per iteration (an iteration starts at collect_rollouts)."""

    def __init__(self) -> None:
        self.iterations: list[dict[str, float]] = []
        self.spent: dict[str, float] = defaultdict(float)
        self.marks: tuple[float, float] | None = None

    def timed(self, part: str, method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[part] += time.thread_time() - start
        return wrapper

    def start_iteration(self) -> None:
        now = time.thread_time(), time.process_time()
        if self.marks is not None:
            self.close(now)
        self.marks, self.spent = now, defaultdict(float)

    def close(self, now: tuple[float, float]) -> None:
        spent = dict(self.spent)
        # the callbacks run inside collect_rollouts: the loop is what is left of it
        spent["rollout loop"] = spent.pop("collect_rollouts") - spent.get(
            "callbacks per step", 0.0) - spent.get("callbacks at rollout end", 0.0)
        total = now[0] - self.marks[0]
        spent["other"] = total - sum(spent.values())
        spent["thread"], spent["process"] = total, now[1] - self.marks[1]
        self.iterations.append(spent)


# the methods timed, and the part each one's time goes to
TIMED = {(CompiledPPO, "train"): "update", (CallbackList, "_on_step"): "callbacks per step",
         (CallbackList, "_on_rollout_end"): "callbacks at rollout end",
         (Logger, "dump"): "logger dump"}


def patched(split: Split) -> list[tuple[type, str, Callable]]:
    """Wrap the iteration's methods with the split's timers; the originals, to put back."""
    saved = [(owner, name, getattr(owner, name))
             for owner, name in [(CompiledPPO, "collect_rollouts"), *TIMED]]
    collect = split.timed("collect_rollouts", CompiledPPO.collect_rollouts)

    def collect_rollouts(self, *args, **kwargs):
        split.start_iteration()
        return collect(self, *args, **kwargs)

    CompiledPPO.collect_rollouts = collect_rollouts
    for (owner, name), part in TIMED.items():
        setattr(owner, name, split.timed(part, getattr(owner, name)))
    return saved


def one_run(path: Path | None, optimizer: str, seed: int, iterations: int,
            root: Path) -> dict[str, float]:
    """A run's CPU seconds per part in its median iteration, the first one left out."""
    cfg = config.load(path, None, [f"training.optimizer={optimizer}",
                                   f"training.seed={seed}", *QUIET])
    cfg["training"]["total_timesteps"] = iterations * cfg["env"]["n_envs"] * cfg["ppo"]["n_steps"]
    split = Split()
    saved = patched(split)
    try:
        train(cfg, root / f"{optimizer}-{seed}", show_progress=False)
        split.start_iteration()  # closes the last iteration (its dump included)
    finally:
        for owner, name, method in saved:
            setattr(owner, name, method)
    steady = split.iterations[1:]
    typical = {key: statistics.median(it.get(key, 0.0) for it in steady) for key in steady[0]}
    largest = max(steady, key=lambda it: it["thread"])
    typical["one-off"] = largest["thread"] - typical["thread"]
    typical["one-off at rollout end and dump"] = (
        largest.get("callbacks at rollout end", 0.0) + largest.get("logger dump", 0.0)
        - typical.get("callbacks at rollout end", 0.0) - typical.get("logger dump", 0.0))
    return typical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="default: the packaged walker's")
    parser.add_argument("--iterations", type=int, default=12, help="per run, the first apart")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizers", nargs="+", default=["momentum", "fop-momentum"])
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for turn in range(args.repeats):
            for name in in_turn(args.optimizers, turn):
                results[name].append(one_run(args.config, name, turn, args.iterations,
                                             Path(tmp)))
    keys = (*PARTS, "thread", "process", "one-off", "one-off at rollout end and dump")
    print(f"{args.config or 'the packaged walker'}: CPU ms per iteration (a rollout and its "
          f"update): per run the median iteration (the first left out), then the median over "
          f"{args.repeats} runs of {args.iterations} iterations; one-off: the run's costliest "
          "iteration less its median one")
    print("| part | " + " | ".join(args.optimizers) + " |")
    print("|---|" + "---|" * len(args.optimizers))
    for key in keys:
        cells = [statistics.median(r[key] for r in results[name]) * 1e3
                 for name in args.optimizers]
        print(f"| {key} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
