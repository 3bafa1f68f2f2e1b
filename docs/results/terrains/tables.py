"""The terrain study's summary tables, from report.sh's outputs (report.json, trend.json).

    python docs/results/terrains/tables.py docs/results/terrains/ladder > ladder/tables.md

Per rung: each optimizer's last model and best-so-far at the budget, median over seeds [95% CI];
P(fop-momentum better than momentum) and P(fop-momentum better than adam) on both; then the
wall time of the study's runs and the versions they ran with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ENV = "fop_rl-BipedalWalkerTerrain-v0-"
LABELS = ("momentum", "adam", "fop-momentum")
# report.json's key of each metric; its P(improvement) sits beside the best-so-far's median
# and inside the last model's entry
METRICS = (("final_eval", "last model (50 episodes)"), ("final", "best-so-far at 500k"))


def median(entry: dict) -> str:
    low, high = entry["median_ci"]
    return f"{entry['median']:.1f} [{low:.1f}, {high:.1f}]"


def p(entry: dict, other: str) -> str:
    value, (low, high) = entry[other]["value"], entry[other]["ci"]
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    folder = Path(sys.argv[1])
    report = json.loads((folder / "report.json").read_text())
    trend = json.loads((folder / "trend.json").read_text())
    difficulty = dict(zip(trend["rungs"], trend["difficulty"], strict=True))
    for key, name in METRICS:
        print(f"**{name}**, median over seeds [95% CI]:\n")
        print("| rung (start's return) | seeds | " + " | ".join(LABELS)
              + " | P(fop-momentum > momentum) | P(fop-momentum > adam) |")
        print("|---" * (len(LABELS) + 4) + "|")
        for rung in trend["rungs"]:
            group = report[ENV + rung]
            fop = group["fop-momentum"]
            fop = (fop[key] if key == "final_eval" else fop)["prob_improvement"]
            print(f"| `{rung}` ({difficulty[rung]:.1f}) | {group['momentum']['seeds']} | "
                  + " | ".join(median(group[label][key]) for label in LABELS)
                  + f" | {p(fop, 'momentum')} | {p(fop, 'adam')} |")
        print()
    wall = {label: sum(report[ENV + r][label]["wall_time_s"]["total"] for r in trend["rungs"])
            for label in LABELS}
    runs = sum(report[ENV + r][label]["wall_time_s"]["runs"] for r in trend["rungs"]
               for label in LABELS)
    print(f"Wall time of the {runs} runs (each run's own, two at a time on 2 cores, pauses "
          "included): "
          + ", ".join(f"{label} {hours / 3600:.1f} h" for label, hours in wall.items())
          + f"; {sum(wall.values()) / 3600:.1f} h in all.\n")
    versions = {json.dumps(v, sort_keys=True) for r in trend["rungs"] for label in LABELS
                for v in report[ENV + r][label]["versions"]}
    for v in sorted(versions):
        print("Versions: " + ", ".join(f"{k} {x}" for k, x in json.loads(v).items()))


if __name__ == "__main__":
    main()
