"""Summarise `fop-rl inspect` tables (<label>-seed-<n>.txt) into one markdown table per label:
P's largest eigenvalue at the end of each run, over layers (all, the policy's, the value
function's), then the median over seeds.

    python docs/results/spectra.py docs/results/variants/inspect > spectra.md

Rows named ``<layer>.P_out`` (Kronecker FOP's output factor alone) are left out: each layer's
own row already describes its effective P = P_out (x) P_in.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def largest_eigenvalues(table: Path) -> dict[str, float]:
    """Layer -> eig max, from one inspect table."""
    out = {}
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 7 and not fields[0].endswith(".P_out"):
            out[fields[0]] = float(fields[4])
    return out


def _value_layer(name: str) -> bool:
    """SB3's value network: mlp_extractor.value_net.* and the value head value_net.*."""
    return name.startswith(("mlp_extractor.value_net.", "value_net."))


def main() -> None:
    folder = Path(sys.argv[1])
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    for table in sorted(folder.glob("*-seed-*.txt")):
        label = re.sub(r"-seed-\d+$", "", table.stem)
        runs[label].append(largest_eigenvalues(table))
    print("| label | seeds | largest eigenvalue of P, any layer | policy's layers | value "
          "function's layers | median layer's |")
    print("|---|---|---|---|---|---|")
    for label, tables in runs.items():
        top = [max(t.values()) for t in tables]
        middle = [statistics.median(t.values()) for t in tables]
        # a network FOP leaves alone (fop-policy-momentum's value function) has P = I
        policy = [max((v for k, v in t.items() if not _value_layer(k)), default=1.0)
                  for t in tables]
        value = [max((v for k, v in t.items() if _value_layer(k)), default=1.0) for t in tables]
        print(f"| {label} | {len(tables)} | {statistics.median(top):.3g} "
              f"(range {min(top):.3g}-{max(top):.3g}) | {statistics.median(policy):.3g} | "
              f"{statistics.median(value):.3g} | {statistics.median(middle):.3g} |")
    print("\nMedians over seeds of each run's value; a run's values are P's largest eigenvalue "
          "per layer at the end of training (`fop-rl inspect --model last`), over all layers, "
          "the policy's (action head and log_std included), the value function's (1 where FOP "
          "leaves it alone), and the median layer's.")


if __name__ == "__main__":
    main()
