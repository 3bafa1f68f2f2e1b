"""Whether the walker study adds seeds 10-19, and for which FOP label: the rule, fixed before
seeds 4-9 were seen, is to take the FOP label with the highest P(improvement) over momentum on
the paper's metric (best-so-far return at 1M steps) and to add seeds when its 95% CI reaches
both below 0.4 and above 0.6 (the data then cannot tell a moderate gain from a moderate loss).
Prints that label, or nothing; the reasoning goes to stderr.

    python docs/results/decisive/more_seeds.py docs/results/decisive/bipedal-walker/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LOW, HIGH = 0.4, 0.6


def main() -> None:
    groups = json.loads(Path(sys.argv[1]).read_text())
    labels = next(iter(groups.values()))
    against = {label: r["prob_improvement"]["momentum"] for label, r in labels.items()
               if label.startswith("fop-")}
    best = max(against, key=lambda label: against[label]["value"])
    p = against[best]
    wide = p["ci"][0] < LOW and p["ci"][1] > HIGH
    print(f"{best}: P(improvement over momentum) {p['value']:.2f} [{p['ci'][0]:.2f}, "
          f"{p['ci'][1]:.2f}] at {labels[best]['seeds']} seeds: "
          f"{'more seeds' if wide else 'enough'}", file=sys.stderr)
    if wide:
        print(best)


if __name__ == "__main__":
    main()
