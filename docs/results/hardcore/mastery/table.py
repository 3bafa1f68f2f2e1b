"""The screen's table from its records: deployed.json per run (written by deploy.py), or, for
the runs scored after the recipe chose its last model, last_model_scores.json (`fop-rl evaluate
RUN --model last --episodes 100 --backend gymnasium --seed 1000 --json`):

    python docs/results/hardcore/mastery/table.py

Per run: the deployed model, its mean [95% CI] on the leaderboard's episodes (reset seeds
1000-1099) with falls and the obstacle most fallen at, the last model's mean on the same
episodes, and the arm's score (the mean of its runs' scores) when all its runs are scored.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

RECORDS = Path(__file__).parent / "records"
SEEDS = {"length": (12, 13, 14)}  # every other arm: seeds 10 and 11


def scored(folder: Path) -> tuple[str, dict, dict] | None:
    """The run's deployed model, its scores and the last model's, if it has been scored."""
    if (folder / "deployed.json").exists():
        record = json.loads((folder / "deployed.json").read_text())
        deployed, scores = record["deployed"], record["scores"]
        if deployed is None or "last" not in scores:
            return None
        return deployed, scores[deployed], scores["last"]
    if (folder / "last_model_scores.json").exists():
        last = json.loads((folder / "last_model_scores.json").read_text())
        return "last", last, last
    return None


def main() -> None:
    print("| arm | seed | deployed | score [95% CI] | falls (most at) | last model | arm score |")
    print("|---|---|---|---|---|---|---|")
    arms: dict[str, list[float]] = defaultdict(list)
    for folder in sorted(RECORDS.glob("*/*/*/seed-*")):
        found = scored(folder)
        if found is None:
            continue
        deployed, score, last = found
        arm, seed = folder.parts[-4], folder.name.removeprefix("seed-")
        arms[arm].append(score["mean"])
        where = max(score["falls_at"], key=score["falls_at"].get) if score["falls_at"] else "-"
        done = len(arms[arm]) == len(SEEDS.get(arm, (10, 11)))
        arm_score = f"{sum(arms[arm]) / len(arms[arm]):.1f}" if done else ""
        low, high = score["ci"]
        print(f"| {arm} | {seed} | {deployed} | {score['mean']:.1f} [{low:.1f}, {high:.1f}] | "
              f"{score['ends'].get('fell', 0)}% ({where}) | {last['mean']:.1f} | {arm_score} |")


if __name__ == "__main__":
    main()
