"""The screen's table from its records (deployed.json per run, written by deploy.py):

    python docs/results/hardcore/mastery/table.py

Per run: the deployed model, its mean [95% CI] on the leaderboard's episodes (reset seeds
1000-1099) with falls and the obstacle most fallen at, the last model's mean on the same
episodes, and the arm's score (the mean of its runs' scores) when all its runs are deployed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

RECORDS = Path(__file__).parent / "records"
SEEDS = (10, 11)


def main() -> None:
    print("| arm | seed | deployed | score [95% CI] | falls (most at) | last model | arm score |")
    print("|---|---|---|---|---|---|---|")
    arms: dict[str, list[float]] = defaultdict(list)
    for path in sorted(RECORDS.glob("*/*/*/seed-*/deployed.json")):
        record = json.loads(path.read_text())
        arm, seed = path.parts[-5], path.parts[-2].removeprefix("seed-")
        deployed, scores = record["deployed"], record["scores"]
        if deployed is None or "last" not in scores:
            continue
        score = scores[deployed]
        arms[arm].append(score["mean"])
        where = max(score["falls_at"], key=score["falls_at"].get) if score["falls_at"] else "-"
        done = len(arms[arm]) == len(SEEDS)
        arm_score = f"{sum(arms[arm]) / len(arms[arm]):.1f}" if done else ""
        low, high = score["ci"]
        print(f"| {arm} | {seed} | {deployed} | {score['mean']:.1f} [{low:.1f}, {high:.1f}] | "
              f"{score['ends'].get('fell', 0)}% ({where}) | {scores['last']['mean']:.1f} | "
              f"{arm_score} |")


if __name__ == "__main__":
    main()
