"""Runs of the hard-terrain recipe, training only: this checkout against another one
(``--before``), alone and two at once.

Every run is a real ``fop-rl train`` process on this checkout's
configs/bipedal_walker_hardcore_recipe.yaml (16 EnvPool environments x 2048 decisions, action
repeat 3, Adam), the same file for both checkouts, with evaluations, checkpoints and the final
evaluation out of the way (their time depends on how long the policy's episodes last). ``alone``:
one run at a time; ``pair``: two runs at once (seeds differ), one core each, as the mastery
screen runs them. Each turn runs both checkouts, in alternating order. Speed is read as
whole_runs.py reads it: PPO steps (decisions) per second over the iterations after the first
(the first one compiles: reported apart, with the process's start).

    python benchmarks/recipe_runs.py --before CHECKOUT [--iterations 4] [--repeats 3]
                                     [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from throughput import in_turn, print_ratio, train_args, train_at_once  # beside this
from whole_runs import QUIET, speeds

from fop_rl import config

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "bipedal_walker_hardcore_recipe.yaml"


def train(checkout: Path, settings: list[str], seeds: tuple[int, ...], timesteps: int,
          root: Path) -> list[dict[str, float]]:
    """The recipe's runs of ``seeds`` at once; each one's speeds."""
    runs = {f"seed-{s}": ["--config", str(RECIPE),
                          *train_args("adam", s, timesteps, root / f"seed-{s}", QUIET + settings)]
            for s in seeds}
    seconds = train_at_once(runs, cwd=checkout)
    return [speeds(root / name, s) for name, s in seconds.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="another checkout's root")
    parser.add_argument("--iterations", type=int, default=4,
                        help="rollouts and updates per run, the first one apart (default 4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        help="KEY=VALUE for this checkout's runs")
    args = parser.parse_args()
    variants = {"before": (args.before.resolve(), []), "after": (ROOT, args.settings)}
    recipe = config.load(RECIPE)
    timesteps = args.iterations * recipe["env"]["n_envs"] * recipe["ppo"]["n_steps"]
    results: dict[tuple[str, str], list[float]] = {(m, v): [] for m in ("alone", "pair")
                                                    for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for turn in range(args.repeats):
            for mode, seeds in (("alone", (turn,)), ("pair", (turn, turn + 100))):
                for v in in_turn(list(variants), turn):
                    checkout, settings = variants[v]
                    runs = train(checkout, settings, seeds, timesteps,
                                 Path(tmp) / f"{turn}-{mode}-{v}")
                    steady = statistics.mean(s["steady"] for s in runs)
                    results[mode, v].append(steady)
                    print(f"  turn {turn} {mode:5s} {v:6s} steady {steady:6.0f} decisions/s a run,"
                          f" first iteration and start-up {runs[0]['first_s']:5.1f} s", flush=True)
    print(f"\nRecipe runs of {timesteps} decisions, {args.repeats} turns; after: "
          f"{' '.join(args.settings) or 'its defaults'} (medians of per-turn ratios)")
    for mode in ("alone", "pair"):
        after, before = results[mode, "after"], results[mode, "before"]
        print(f"  {mode}: steady {statistics.median(before):.0f} -> "
              f"{statistics.median(after):.0f} decisions/s a run")
        print_ratio(f"{mode}, after / before", after, before)


if __name__ == "__main__":
    main()
