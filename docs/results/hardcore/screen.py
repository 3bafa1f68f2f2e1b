"""The hard-terrain screen's table (README.md: the design) from its committed run records.

    python docs/results/hardcore/screen.py [RECORDS] > docs/results/hardcore/screen.md

Per run: the last model's mean return over 50 episodes of BipedalWalkerHardcore-v3 (primary),
the area under its evaluation curve (the mean of its 10-episode evaluations), its best
evaluation, the first step at which an evaluation reached 0, and its wall time. Per arm: the
median over its seeds. The best arm by the design's rule: the highest primary score; within 10
of each other, the higher area. Phase 2 runs phase 1's best arm from the walking start
(`<arm>-from-start`); once it is whole, the recipe is the best of the four arms by the same
rule. The recipe's runs at length (`<recipe>-length`) and the optimizers compared with it
(`<recipe>-compare`) are not part of the screen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
PHASE_1 = ("zoo", "fall0", "repeat3")
SEEDS = (0, 1)
TIE = 10.0


def curve(seed_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A run's evaluation steps and the mean return of each evaluation."""
    with np.load(seed_dir / "evaluations.npz") as npz:
        return npz["timesteps"], npz["results"].mean(axis=1)


def run_scores(seed_dir: Path) -> dict[str, float]:
    status = json.loads((seed_dir / "run.json").read_text())
    final = seed_dir / "final_evaluation.json"
    last = json.loads(final.read_text())["mean"] if final.exists() else -np.inf
    steps, means = curve(seed_dir)
    reached = steps[means >= 0]
    return {"last": float(last), "area": float(means.mean()), "best": float(means.max()),
            "to_zero": float(reached[0]) if reached.size else np.nan,
            "hours": status.get("wall_time_s", np.nan) / 3600, "steps": status["timesteps_done"]}


def load(records: Path) -> dict[str, dict[int, dict[str, float]]]:
    """arm -> seed -> scores, for every complete record."""
    arms: dict[str, dict[int, dict[str, float]]] = {}
    for status_file in sorted(records.glob("*/BipedalWalkerHardcore-v3/adam/seed-*/run.json")):
        seed_dir = status_file.parent
        arm = seed_dir.parents[2].name
        arms.setdefault(arm, {})[int(seed_dir.name.removeprefix("seed-"))] = run_scores(seed_dir)
    return arms


def best_arm(scores: dict[str, tuple[float, float]]) -> str:
    """The design's rule over arm -> (median last model, median area)."""
    ranked = sorted(scores, key=lambda arm: scores[arm][0], reverse=True)
    if len(ranked) > 1 and scores[ranked[0]][0] - scores[ranked[1]][0] <= TIE:
        return max(ranked[:2], key=lambda arm: scores[arm][1])
    return ranked[0]


def fmt(value: float, spec: str = ".1f") -> str:
    return "-" if not np.isfinite(value) else format(value, spec)


def main() -> None:
    records = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "records"
    arms = {arm: runs for arm, runs in load(records).items()
            if not arm.endswith(("-length", "-compare"))}
    print("# The hard-terrain screen: runs and arms\n")
    print(f"From the records in `{records.name}/` (`python docs/results/hardcore/screen.py`). "
          "Returns are BipedalWalkerHardcore-v3's own (a fall -100, no scaling).\n")
    print("| arm | seed | steps | last model (50 ep.) | area (mean evaluation) | best evaluation "
          "| first evaluation >= 0 at | hours |")
    print("|---|---|---|---|---|---|---|---|")
    for arm, runs in arms.items():
        for seed, s in sorted(runs.items()):
            to_zero = "never" if not np.isfinite(s["to_zero"]) else f"{s['to_zero'] / 1e6:.1f}M"
            print(f"| {arm} | {seed} | {s['steps'] / 1e6:.1f}M | {fmt(s['last'])} | "
                  f"{fmt(s['area'])} | {fmt(s['best'])} | {to_zero} | {fmt(s['hours'], '.2f')} |")
    medians = {arm: (float(np.median([s["last"] for s in runs.values()])),
                     float(np.median([s["area"] for s in runs.values()])))
               for arm, runs in arms.items()}
    print("\n| arm | seeds | median last model | median area |\n|---|---|---|---|")
    for arm, (last, area) in medians.items():
        print(f"| {arm} | {len(arms[arm])} | {fmt(last)} | {fmt(area)} |")
    if not whole(arms, PHASE_1):
        print(f"\nInterim: phase 1 holds {sum(len(arms.get(a, {})) for a in PHASE_1)} of "
              f"{len(PHASE_1) * len(SEEDS)} runs; no arm is read until all are in.")
        return
    best = best_arm({arm: medians[arm] for arm in PHASE_1})
    print(f"\n**Phase 1's best arm by the rule: `{best}`.**")
    screened = (*PHASE_1, f"{best}-from-start")
    if not whole(arms, screened):
        print(f"\nInterim: phase 2 (`{screened[-1]}`) holds {len(arms.get(screened[-1], {}))} of "
              f"{len(SEEDS)} runs; the recipe is not read until both are in.")
        return
    recipe = best_arm({arm: medians[arm] for arm in screened})
    print(f"\n**The recipe, the best of the four arms by the rule: `{recipe}`.**")


def whole(arms: dict[str, dict[int, dict[str, float]]], names: tuple[str, ...]) -> bool:
    """Whether every arm named holds every seed of the screen."""
    return all(set(arms.get(name, {})) >= set(SEEDS) for name in names)


if __name__ == "__main__":
    main()
