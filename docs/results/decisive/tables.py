"""The decisive study's tables from a report.json, in markdown, per environment: final score
(both metrics side by side), speed of learning (area under the curve, steps to threshold),
each with P(improvement) against momentum and Adam, and each seed's numbers. Written from the
report, never copied by hand.

    python docs/results/decisive/tables.py docs/results/decisive/bipedal-walker/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fop_rl.report import DEFAULT_BASELINES, interval_text, probability_text


def table(labels: dict[str, dict], columns: dict[str, str]) -> list[str]:
    """One row per label: for each metric of ``columns`` (report.json key -> heading), the
    median [CI] and P(better than) each baseline the group has."""
    bases = [b for b in DEFAULT_BASELINES if b in labels]
    header, rule = "| label | seeds |", "|---|---|"
    for heading in columns.values():
        header += f" {heading}, median [95% CI] |" + "".join(
            f" P(better than {b}) |" for b in bases)
        rule += "---|" * (1 + len(bases))
    lines = [header, rule]
    for label, r in labels.items():
        row = f"| {label} | {r['seeds']} |"
        for key in columns:
            metric = r.get(key)
            if metric is None:
                row += " - |" * (1 + len(bases))
                continue
            # the best-so-far's P(improvement) sits beside its block, the others' inside
            probabilities = metric.get("prob_improvement", r["prob_improvement"])
            row += f" {interval_text(metric['median'], metric['median_ci'])} |" + "".join(
                f" {probability_text(probabilities.get(b))} |" for b in bases)
        lines.append(row)
    return lines


def speed(labels: dict[str, dict]) -> list[str]:
    """Steps to the threshold of each label's median best-so-far curve."""
    return ["| label | steps to threshold |", "|---|---|"] + [
        f"| {label} | {'-' if r['steps_to_threshold'] is None else r['steps_to_threshold']} |"
        for label, r in labels.items()]


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
        print("Final score:\n")
        print("\n".join(table(labels, {"final": "best-so-far",
                                        "final_eval": "last model"})) + "\n")
        print("Speed of learning:\n")
        print("\n".join(table(labels, {"auc": "area under the best-so-far curve"})) + "\n")
        print("\n".join(speed(labels)) + "\n")
        print("\n".join(per_seed(labels)) + "\n")
    print("Best-so-far: the maximum of the 5-episode evaluations up to the final common step "
          "(the paper's metric). Last model: its mean over the final evaluation's deterministic "
          "episodes. Area under the curve: the best-so-far curve's mean over the evaluations "
          "(learning early counts). P(better than X): the probability that a run of the row "
          "beats a run of X (rliable), with its 95% CI. Steps to threshold: where the median "
          "best-so-far curve first reaches it.")


if __name__ == "__main__":
    main()
