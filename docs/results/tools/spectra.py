"""Summarise `fop-rl inspect` tables (<label>-seed-<n>.txt) into one markdown table per label:
P's largest eigenvalue at the end of each run, over layers (all, the policy's, the value
function's), then the median over seeds.

    python docs/results/tools/spectra.py docs/results/variants/inspect [--each] > spectra.md

``--each`` adds a table of every run's values (to set beside its returns).

Rows named ``<layer>.P_out`` (Kronecker FOP's output factor alone) are left out: each layer's
own row already describes its effective P = P_out (x) P_in.
"""

from __future__ import annotations

import argparse
import re
import statistics
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


def split(table: dict[str, float]) -> tuple[float, float]:
    """The largest eigenvalue over the policy's layers and over the value function's; a
    network FOP leaves alone (fop-policy-momentum's value function) has P = I."""
    policy = max((v for k, v in table.items() if not _value_layer(k)), default=1.0)
    value = max((v for k, v in table.items() if _value_layer(k)), default=1.0)
    return policy, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--each", action="store_true", help="also every run's values")
    args = parser.parse_args()
    runs: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for table in sorted(args.folder.glob("*-seed-*.txt")):
        label, seed = re.fullmatch(r"(.*)-seed-(\d+)", table.stem).groups()
        runs[label][seed] = largest_eigenvalues(table)
    print("| label | seeds | largest eigenvalue of P, any layer | policy's layers | value "
          "function's layers | median layer's |")
    print("|---|---|---|---|---|---|")
    for label, seeds in runs.items():
        tables = list(seeds.values())
        top = [max(t.values()) for t in tables]
        middle = [statistics.median(t.values()) for t in tables]
        policy, value = zip(*map(split, tables), strict=True)
        print(f"| {label} | {len(tables)} | {statistics.median(top):.3g} "
              f"(range {min(top):.3g}-{max(top):.3g}) | {statistics.median(policy):.3g} | "
              f"{statistics.median(value):.3g} | {statistics.median(middle):.3g} |")
    print("\nMedians over seeds of each run's value; a run's values are P's largest eigenvalue "
          "per layer at the end of training (`fop-rl inspect --model last`), over all layers, "
          "the policy's (action head and log_std included), the value function's (1 where FOP "
          "leaves it alone), and the median layer's.")
    if args.each:
        print("\n| label | seed | policy's layers | value function's layers |\n|---|---|---|---|")
        for label, seeds in runs.items():
            for seed, table in sorted(seeds.items(), key=lambda item: int(item[0])):
                policy, value = split(table)
                print(f"| {label} | {seed} | {policy:.3g} | {value:.3g} |")


if __name__ == "__main__":
    main()
