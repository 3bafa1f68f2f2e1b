"""How long the ``fop-rl`` command takes to answer --help and usage errors, in wall time.

Each repeat runs every command once, interleaved, as a fresh process (as a user's shell does),
beside two baselines: the bare interpreter and ``import gymnasium``, which ``import fop_rl``
needs (it registers the terrain walker). Medians over repeats; on a busy machine every figure
grows, so read them against the baselines of the same repeats.

    python benchmarks/cli_startup.py [--repeats 7] [--before CHECKOUT]

``--before`` also runs the fop-rl commands from another checkout of the repository (an older
commit, say), interleaved with these, for a before/after on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import gymnasium'": [sys.executable, "-c", "import gymnasium"],
    "fop-rl --help": [sys.executable, "-m", "fop_rl.cli", "--help"],
    "fop-rl train --help": [sys.executable, "-m", "fop_rl.cli", "train", "--help"],
    "fop-rl train --seed x (usage error)": [sys.executable, "-m", "fop_rl.cli", "train",
                                            "--seed", "x"],
    "fop-rl train --optimizer nope (config error)": [sys.executable, "-m", "fop_rl.cli",
                                                     "train", "--optimizer", "nope"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", help="another checkout's root, run the same way")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    runs = {name: (argv, here) for name, argv in COMMANDS.items()}
    if args.before:  # python -m imports from the working folder first
        runs.update({f"{name} [before]": (argv, args.before) for name, argv in COMMANDS.items()
                     if name.startswith("fop-rl")})
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (argv, cwd) in runs.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False, cwd=cwd,
                           env={**os.environ, "PYTHONPATH": cwd})
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:57s} {statistics.median(values):6.3f} s (median of {args.repeats}, "
              f"min {min(values):.3f})")


if __name__ == "__main__":
    main()
