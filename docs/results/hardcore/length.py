"""The recipe at length (README.md: the design) from its committed run records.

    python docs/results/hardcore/length.py [RECORDS] > docs/results/hardcore/length.md

and ``length.png`` beside the records: each seed's evaluation curve against the zoo's marks.

Per run (seeds 2-4 of `<recipe>-length`): the last model's mean return over 50 episodes of
BipedalWalkerHardcore-v3, its best evaluation, the first steps at which an evaluation (10
episodes) reached 0 and 100, with the hours to each at the run's own pace, against the zoo's
PPO (0 at about 5.8M steps, 100 at about 38M, from its released training logs). The recipe
walks if the median last model of its seeds is above 0 (the first bar); above 100 is the goal.
If it walks, the optimizers' comparison runs at the budget where the recipe first passes 0: the
first evaluation step at which the median over the seeds of the evaluations' means reaches 0,
rounded up to the next million steps.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend
from screen import HERE, curve, fmt, load

ZOO = {0: 5.8e6, 100: 38e6}  # rl-baselines3-zoo's PPO: steps to an evaluation of 0 and 100
SEEDS = (2, 3, 4)


def first_at(seed_dir: Path, level: float) -> float:
    """The first step at which an evaluation's mean reached ``level`` (NaN: never)."""
    steps, means = curve(seed_dir)
    reached = steps[means >= level]
    return float(reached[0]) if reached.size else np.nan


def comparison_budget(seed_dirs: list[Path]) -> float:
    """The first step at which the seeds' median evaluation reached 0, rounded up to the next
    million (NaN: never), over the steps every seed evaluated at."""
    curves = []
    for seed_dir in seed_dirs:
        steps, means = curve(seed_dir)
        curves.append(dict(zip(steps.tolist(), means.tolist(), strict=True)))
    for step in sorted(set.intersection(*(set(c) for c in curves))):
        if np.median([c[step] for c in curves]) >= 0:
            return float(math.ceil(step / 1e6) * 1e6)
    return np.nan


def plot(seed_dirs: dict[str, Path], out: Path) -> None:
    """Each run's evaluation means over steps, with the zoo's PPO's steps to 0 and to 100."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, seed_dir in seed_dirs.items():
        steps, means = curve(seed_dir)
        ax.plot(steps / 1e6, means, label=label, lw=1)
    for level, steps in ZOO.items():
        ax.axhline(level, color="grey", lw=0.5, ls=":")
        ax.plot([steps / 1e6], [level], "k*", ms=10)
    ax.plot([], [], "k*", label="the zoo's PPO reaches 0, 100")
    ax.set(xlabel="PPO steps (millions)", ylabel="evaluation mean (10 episodes)",
           title="BipedalWalkerHardcore-v3: the recipe at length")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def steps_and_hours(step: float, total_steps: float, hours: float) -> str:
    if not np.isfinite(step):
        return "never"
    return f"{step / 1e6:.1f}M ({hours * step / total_steps:.1f} h)"


def main() -> None:
    records = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "records"
    arms = {arm: runs for arm, runs in load(records).items() if arm.endswith("-length")}
    print("# The hard-terrain recipe at length\n")
    print(f"From the records in `{records.name}/` (`python docs/results/hardcore/length.py`). "
          "Returns are BipedalWalkerHardcore-v3's own (a fall -100, no scaling). The zoo's "
          f"PPO: 0 at {ZOO[0] / 1e6:.1f}M steps, 100 at {ZOO[100] / 1e6:.0f}M. Steps are PPO's "
          "(the agent's decisions, as many samples and updates in every arm: with action repeat "
          "k, k simulator steps each).\n")
    if not arms:
        print("No run at length is recorded yet.")
        return
    print("| recipe | seed | steps | last model (50 ep.) | best evaluation | first evaluation "
          ">= 0 at | >= 100 at | hours |\n|---|---|---|---|---|---|---|---|")
    for arm, runs in arms.items():
        for seed, s in sorted(runs.items()):
            seed_dir = records / arm / "BipedalWalkerHardcore-v3" / "adam" / f"seed-{seed}"
            to = {level: steps_and_hours(first_at(seed_dir, level), s["steps"], s["hours"])
                  for level in ZOO}
            print(f"| {arm} | {seed} | {s['steps'] / 1e6:.1f}M | {fmt(s['last'])} | "
                  f"{fmt(s['best'])} | {to[0]} | {to[100]} | {fmt(s['hours'], '.2f')} |")
    plot({f"{arm} seed {seed}": records / arm / "BipedalWalkerHardcore-v3" / "adam" / f"seed-{seed}"
          for arm, runs in arms.items() for seed in sorted(runs)}, records.parent / "length.png")
    print("\n![evaluation curves](length.png)")
    for arm, runs in arms.items():
        median = float(np.median([s["last"] for s in runs.values()]))
        if set(runs) >= set(SEEDS):
            verdict = ("walks: the median last model is above 0" if median > 0 else
                       "does not walk: the median last model is not above 0")
            goal = " and above 100, the goal" if median > 100 else ""
            print(f"\n**`{arm}`, {len(runs)} seeds: median last model {median:.1f}; "
                  f"{verdict}{goal}.**")
            if median > 0:
                budget = comparison_budget([records / arm / "BipedalWalkerHardcore-v3" / "adam"
                                            / f"seed-{seed}" for seed in sorted(runs)])
                print(f"\nThe optimizers' comparison budget: {budget / 1e6:.0f}M steps "
                      f"(`PHASE=compare RECIPE={arm.removesuffix('-length')} "
                      f"STEPS={budget:.0f} bash docs/results/hardcore/screen.sh`).")
        else:
            print(f"\nInterim: `{arm}` holds {len(runs)} of {len(SEEDS)} seeds (median last "
                  f"model so far {median:.1f}); no verdict until all are in.")


if __name__ == "__main__":
    main()
