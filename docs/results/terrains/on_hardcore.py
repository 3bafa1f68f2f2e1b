"""Part 2's last models on BipedalWalkerHardcore-v3 itself (gymnasium's environment, not the
terrain walker's `hardcore` preset), 50 episodes each, through `fop-rl evaluate`.

    python docs/results/terrains/on_hardcore.py RUNS --out OUT/hardcore-v3.json [--jobs 2]

RUNS holds one folder per label (curriculum, direct) of seed-<n> runs. Writes every run's mean
and episode returns, each label's median over seeds with its bootstrap CI, and P(curriculum >
direct) with its CI, and for a curriculum run the step at which each of its stages began (its
run.json's curriculum_history); prints the run with the highest mean (the GIF's agent).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fop_rl import stats
from fop_rl.rundir import read_status

ENV_ID = "BipedalWalkerHardcore-v3"
EPISODES = 50
LEVEL, REPS = 0.95, 2000  # as fop-rl report's defaults


def evaluate(run: Path) -> dict:
    out = subprocess.run(["fop-rl", "evaluate", str(run), "--model", "last", "--env", ENV_ID,
                          "--episodes", str(EPISODES), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def means(seeds: dict[str, dict]) -> np.ndarray:
    return np.array([r["mean"] for r in seeds.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=1, help="evaluations at once (one core each)")
    args = parser.parse_args()
    todo = [run for label_dir in sorted(p for p in args.runs.iterdir() if p.is_dir())
            for run in sorted(label_dir.glob("seed-*"))]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(evaluate, todo))
    runs: dict[str, dict[str, dict]] = {}
    for run, result in zip(todo, results, strict=True):
        record = {"mean": result["mean"], "std": result["std"], "returns": result["returns"]}
        history = (read_status(run) or {}).get("curriculum_history")
        if history is not None:
            record["stage_began_at_step"] = history
        runs.setdefault(run.parent.name, {})[run.name.removeprefix("seed-")] = record
    summary = {}
    for label, seeds in runs.items():
        median, low, high = stats.median_ci(means(seeds)[:, None], LEVEL, REPS)
        summary[label] = {"median": float(median[0]), "median_ci": [float(low[0]), float(high[0])]}
    if {"curriculum", "direct"} <= runs.keys():
        value, low, high = stats.probability_of_improvement(
            means(runs["curriculum"]), means(runs["direct"]), LEVEL, REPS)
        summary["p_curriculum_over_direct"] = {"value": value, "ci": [low, high]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"env_id": ENV_ID, "episodes": EPISODES, "model": "last",
                                    "summary": summary, "runs": runs}, indent=2) + "\n")
    best = max(((label, seed, r["mean"]) for label, seeds in runs.items()
                for seed, r in seeds.items()), key=lambda x: x[2])
    print(f"{best[0]}/seed-{best[1]}")


if __name__ == "__main__":
    main()
