"""The decisive study's tables from a report.json, in markdown, per environment: the summary
the README shows (both metrics side by side, P(improvement) against momentum and Adam) and
each seed's numbers. Written from the report, never copied by hand.

    python docs/results/decisive/tables.py docs/results/decisive/bipedal-walker/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BASELINES = ("momentum", "adam")


def interval(value: float, ci: list[float], digits: int = 1) -> str:
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def versus(prob_improvement: dict, baseline: str) -> str:
    p = prob_improvement.get(baseline)
    return "-" if p is None else interval(p["value"], p["ci"], 2)


def summary(labels: dict[str, dict]) -> list[str]:
    bases = [b for b in BASELINES if b in labels]
    lines = ["| label | seeds | best-so-far, median [95% CI] |"
             + "".join(f" P(better than {b}) |" for b in bases)
             + " last model, median [95% CI] |" + "".join(f" P(better than {b}) |" for b in bases)
             + " steps to threshold |",
             "|---|---|---|" + "---|" * len(bases) + "---|" + "---|" * len(bases) + "---|"]
    for label, r in labels.items():
        final, last = r["final"], r.get("final_eval")
        steps = r["steps_to_threshold"]
        row = (f"| {label} | {r['seeds']} | {interval(final['median'], final['median_ci'])} |"
               + "".join(f" {versus(r['prob_improvement'], b)} |" for b in bases))
        if last is None:
            row += " - |" + " - |" * len(bases)
        else:
            row += (f" {interval(last['median'], last['median_ci'])} |"
                    + "".join(f" {versus(last['prob_improvement'], b)} |" for b in bases))
        lines.append(row + f" {'-' if steps is None else steps} |")
    return lines


def per_seed(labels: dict[str, dict]) -> list[str]:
    seeds = sorted({s for r in labels.values() for s in r["final"]["per_seed"]}, key=int)

    def cells(values: dict[str, float]) -> str:
        return " / ".join(f"{values[s]:.1f}" if s in values else "-" for s in seeds)

    lines = [f"| label | best-so-far, seeds {' / '.join(seeds)} | last model, the same seeds |",
             "|---|---|---|"]
    for label, r in labels.items():
        last = r.get("final_eval", {}).get("per_seed", {})
        lines.append(f"| {label} | {cells(r['final']['per_seed'])} | {cells(last)} |")
    return lines


def main() -> None:
    for env_id, labels in json.loads(Path(sys.argv[1]).read_text()).items():
        print(f"## {env_id}\n")
        print("\n".join(summary(labels)) + "\n")
        print("\n".join(per_seed(labels)) + "\n")
    print("Best-so-far: the maximum of the 5-episode evaluations up to the final common step "
          "(the paper's metric). Last model: its mean over the final evaluation's deterministic "
          "episodes. P(better than X): the probability that a run of the row beats a run of X "
          "(rliable), with its 95% CI. Steps to threshold: where the median best-so-far curve "
          "first reaches it.")


if __name__ == "__main__":
    main()
