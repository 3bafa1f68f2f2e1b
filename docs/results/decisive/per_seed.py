"""Each seed's numbers from a report.json, as a markdown table per environment: the best-so-far
return at the final common step and the last model's final evaluation mean, per label and seed
(report.json's `final.per_seed` and `final_eval.per_seed`).

    python docs/results/decisive/per_seed.py docs/results/decisive/bipedal-walker/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cells(per_seed: dict[str, float], seeds: list[str]) -> str:
    return " / ".join(f"{per_seed[s]:.1f}" if s in per_seed else "-" for s in seeds)


def main() -> None:
    for env_id, labels in json.loads(Path(sys.argv[1]).read_text()).items():
        seeds = sorted({s for r in labels.values() for s in r["final"]["per_seed"]}, key=int)
        listed = " / ".join(seeds)
        print(f"**{env_id}**, seeds {listed}:\n")
        print("| label | best-so-far at the final step | last model, final evaluation |")
        print("|---|---|---|")
        for label, r in labels.items():
            last = r.get("final_eval", {}).get("per_seed", {})
            print(f"| {label} | {cells(r['final']['per_seed'], seeds)} | {cells(last, seeds)} |")
        print()


if __name__ == "__main__":
    main()
