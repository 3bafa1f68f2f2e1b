"""Why the recipe stops short of the zoo's TQC (235): its runs' curves and where they fall.

    python docs/results/hardcore/mastery/curves.py > docs/results/hardcore/mastery/curves.md

and ``curves.png`` beside this script. The runs are the packaged recipe's (the screen's `gamma`
arm, seeds 10-11, and its length stage, seeds 12-14), read from their records: the
evaluations (10 EnvPool episodes every 100k PPO steps) and the last models' 100 episodes of
gymnasium's BipedalWalkerHardcore-v3 (reset seeds 1000-1099, last_model_scores.json).

Per run: the mean of the evaluations in each quarter of the 20M steps (40 evaluations, 400
episodes: far less noisy than one), and the last model's episodes by how they ended, with the
mean return of each kind. Pooled over the runs: falls per obstacle, and how far along the
course they happen. From the pooled returns of each kind of ending follows the share of
finishes a mean of 235 needs, had the other endings their present shares.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend

HERE = Path(__file__).parent
RUNS = {f"gamma seed {s}": HERE / f"records/gamma/BipedalWalkerHardcore-v3/adam/seed-{s}"
        for s in (10, 11)}
RUNS |= {f"length seed {s}": HERE / f"records/length/BipedalWalkerHardcore-v3/adam/seed-{s}"
         for s in (12, 13, 14)}
MARKS = {"zoo TQC (235)": 235.0, "committed agent (192.2)": 192.2, "zoo PPO (121.7)": 121.7}
TARGET = 235.0
QUARTERS = ((0, 5e6), (5e6, 10e6), (10e6, 15e6), (15e6, 20e6 + 1))
ENDS = ("finished", "fell", "time limit")


def quarter_means(steps: np.ndarray, returns: np.ndarray) -> list[float]:
    """The mean evaluation return in each quarter of the run."""
    return [float(returns[(steps > low) & (steps <= high)].mean()) for low, high in QUARTERS]


def by_end(episodes: list[dict]) -> dict[str, list[float]]:
    """The episodes' returns grouped by how they ended."""
    groups: dict[str, list[float]] = {end: [] for end in ENDS}
    for episode in episodes:
        groups[episode["end"]].append(episode["return"])
    return groups


def finishes_needed(groups: dict[str, list[float]], target: float) -> float:
    """The share of finishes whose mean is `target`, the rest split as the non-finishes are now."""
    finish = statistics.mean(groups["finished"])
    rest = [r for end in ENDS[1:] for r in groups[end]]
    return (target - statistics.mean(rest)) / (finish - statistics.mean(rest))


def main() -> None:
    present = {name: folder for name, folder in RUNS.items()
               if (folder / "last_model_scores.json").exists()}
    print("| run | evaluations by quarter (0-5M, 5-10M, 10-15M, 15-20M) | last model | "
          "finished / fell / time limit | their mean returns |")
    print("|---|---|---|---|---|")
    pooled: dict[str, list[float]] = {end: [] for end in ENDS}
    falls: Counter[str] = Counter()
    courses: list[float] = []
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, folder in present.items():
        scores = json.loads((folder / "last_model_scores.json").read_text())
        groups = by_end(scores["per_episode"])
        for end in ENDS:
            pooled[end] += groups[end]
        for episode in scores["per_episode"]:
            if episode["end"] == "fell":
                falls[episode["at"]] += 1
                courses.append(episode["course"])
        data = np.load(folder / "evaluations.npz")
        steps, returns = data["timesteps"], data["results"].mean(axis=1)
        quarters = ", ".join(f"{m:.0f}" for m in quarter_means(steps, returns))
        counts = " / ".join(str(len(groups[end])) for end in ENDS)
        means = " / ".join(f"{statistics.mean(groups[end]):.0f}" if groups[end] else "-"
                           for end in ENDS)
        print(f"| {name} | {quarters} | {scores['mean']:.1f} | {counts} | {means} |")
        smooth = np.convolve(returns, np.ones(10) / 10, mode="valid")
        axis.plot(steps[9:] / 1e6, smooth, label=name, linewidth=1.2)
    for label, value in MARKS.items():
        axis.axhline(value, linestyle="--", linewidth=0.8, color="grey")
        axis.text(0.2, value + 4, label, fontsize=8, color="grey")
    axis.set(xlabel="PPO steps (millions)", ylabel="evaluation return (10 episodes, mean of 10)",
             title="The recipe's runs on BipedalWalkerHardcore-v3")
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(HERE / "curves.png", dpi=110)

    episodes = sum(len(v) for v in pooled.values())
    print(f"\nPooled over {len(present)} runs ({episodes} episodes): "
          + ", ".join(f"{end} {len(pooled[end])} (mean {statistics.mean(pooled[end]):.0f})"
                      for end in ENDS if pooled[end]) + ".")
    print("Falls at: " + ", ".join(f"{kind} {n}" for kind, n in falls.most_common())
          + f"; median share of the course at a fall {statistics.median(courses):.2f}.")
    print(f"A mean of {TARGET:.0f} needs {finishes_needed(pooled, TARGET):.0%} finishes "
          f"(now {len(pooled['finished']) / episodes:.0%}).")


if __name__ == "__main__":
    main()
