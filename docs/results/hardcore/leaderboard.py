"""The hard-terrain leaderboard: every agent of leaderboard.yaml on the same 100 episodes of
gymnasium's BipedalWalkerHardcore-v3 (reset seeds 1000-1099), side by side.

    python docs/results/hardcore/leaderboard.py [--episodes 100] [--seed 1000]

writes leaderboard.md (mean with its 95% bootstrap CI, median, ends, steps and hours, P(row
beats column) on the same episode, where each agent falls) and leaderboard.json (every
episode of every agent) beside this script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from fop_rl.evaluate import evaluate
from fop_rl.stats import paired_win

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    entries = yaml.safe_load((HERE / "leaderboard.yaml").read_text())["agents"]
    results = []
    for entry in entries:
        result = evaluate(Path(entry["path"]), args.episodes, entry.get("model"),
                          backend="gymnasium", env_id="BipedalWalkerHardcore-v3",
                          seed=args.seed)
        results.append({**entry, **result})
        print(f"{entry['name']}: {result['mean']:.1f}", flush=True)
    (HERE / "leaderboard.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "leaderboard.md").write_text(report(results, args))


def report(results: list[dict], args: argparse.Namespace) -> str:
    n = args.episodes
    lines = [
        "# The hard-terrain leaderboard",
        "",
        f"{n} deterministic episodes of gymnasium's BipedalWalkerHardcore-v3, reset seeds "
        f"{args.seed}-{args.seed + n - 1}, the same for every agent; observation statistics "
        "frozen; the task's own reward. `python docs/results/hardcore/leaderboard.py` (agents: "
        "[leaderboard.yaml](leaderboard.yaml); every episode: leaderboard.json).",
        "",
        "| agent | trained on | hours | mean [95% CI] | median | fell | time limit | finished |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: -r["mean"]):
        ends = r["ends"]
        lines.append(f"| {r['name']} | {r['steps']} | {r['hours']} | {r['mean']:.1f} "
                     f"[{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] | {r['median']:.1f} | "
                     + " | ".join(f"{100 * ends.get(e, 0) / n:.0f}%"
                                  for e in ("fell", "time limit", "finished")) + " |")
    lines += ["", "P(the row's agent scores above the column's on the same episode), ties "
              "half, with its 95% bootstrap CI over episodes:", "",
              "| | " + " | ".join(r["name"] for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for a in results:
        cells = []
        for b in results:
            if a is b:
                cells.append("")
                continue
            p, low, high = paired_win(a["returns"], b["returns"])
            cells.append(f"{p:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(f"| {a['name']} | " + " | ".join(cells) + " |")
    lines += ["", "Where each agent falls (`at`: the obstacle under the hull, or on open "
              "ground the next obstacle if it starts within 2 terrain steps; "
              "fop_rl/episodes.py):", "",
              "| agent | falls | at | mean share of the course reached at a fall |",
              "|---|---|---|---|"]
    for r in results:
        falls = r["ends"].get("fell", 0)
        at = ", ".join(f"{k} {v}" for k, v in r["falls_at"].items()) or "-"
        share = f"{r['fall_course']:.0%}" if r["fall_course"] is not None else "-"
        lines.append(f"| {r['name']} | {falls} | {at} | {share} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
