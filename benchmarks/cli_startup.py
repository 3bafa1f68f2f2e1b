"""How long the ``fop-rl`` command takes to answer --help and usage errors, in wall time.

Each repeat runs every command once, interleaved, as a fresh process (as a user's shell does),
beside two baselines: the bare interpreter and ``import gymnasium``, which ``import fop_rl``
needs (it registers the terrain walker). Medians over repeats; on a busy machine every figure
grows, so read them against the baselines of the same repeats.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

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
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:48s} {statistics.median(values):6.3f} s (median of {args.repeats}, "
              f"min {min(values):.3f})")


if __name__ == "__main__":
    main()
