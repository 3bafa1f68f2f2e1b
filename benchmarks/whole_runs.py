"""Whole walker runs, training only: this checkout against another one (``--before``), alone and
two at once.

Every run is a real ``fop-rl train`` process on the packaged walker config (EnvPool), with
evaluations, checkpoints and P heatmaps out of the way (an evaluation's time depends on how long
the policy's episodes last: measure it apart). "after" runs this checkout with ``--set`` items
(default ``ppo.compile=true``); "before" runs the other checkout on its own defaults (``python
-m`` from its root imports its code). Two modes, each a turn of both variants in alternating
order: ``alone``, one run at a time (momentum and fop-momentum, their order also alternating, so
that the machine's drift within a turn does not bias their ratio), and ``pair``, momentum and
fop-momentum at once, one core each, as ``fop-rl sweep --jobs 2`` runs them.

Speed is read from the run's TensorBoard: each iteration (a rollout of n_envs x n_steps steps
and its update) logs ``time/fps`` at its end, so the wall time between two of them is one
iteration. ``steady``: env steps/s of the median iteration after the first (the first one
compiles, when compiling is on: reported apart, as ``first_s``, with the process's whole time;
the median, since a FOP run draws P's heatmap once, at its first update's rollout end, about a
second that a 12-iteration run would otherwise count as a tenth of its speed:
iteration_split.py).

    python benchmarks/whole_runs.py --before CHECKOUT [--timesteps 49152] [--repeats 3]
                                    [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from pathlib import Path

from throughput import in_turn, print_ratio, train_args, train_at_once  # beside this

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = ("momentum", "fop-momentum")
QUIET = ["training.eval_freq=100000000", "training.checkpoint_freq=100000000",
         "training.diagnostics_image_every=100000000", "training.final_eval_episodes=0"]


def speeds(run_dir: Path, process_s: float) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((run_dir / "tb").rglob("events.out.*"))))
    events.Reload()
    marks = events.Scalars("time/fps")
    steps = json.loads((run_dir / "run.json").read_text())["timesteps_done"] / len(marks)
    laps = [b.wall_time - a.wall_time for a, b in itertools.pairwise(marks)]
    return {"steady": steps / statistics.median(laps), "first_s": process_s - sum(laps),
            "process_s": process_s}


def train(variant: tuple[Path, list[str]], optimizers: tuple[str, ...], seed: int,
          timesteps: int, root: Path) -> dict[str, dict[str, float]]:
    """The optimizers' runs at once; each one's speeds."""
    checkout, settings = variant
    seconds = train_at_once({name: train_args(name, seed, timesteps, root / f"{name}-{seed}",
                                              QUIET + settings) for name in optimizers},
                            cwd=checkout)
    return {name: speeds(root / f"{name}-{seed}", s) for name, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="another checkout's root")
    parser.add_argument("--timesteps", type=int, default=49_152)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="settings", action="append",
                        help="KEY=VALUE for this checkout's runs (default: ppo.compile=true)")
    args = parser.parse_args()
    variants = {"before": (args.before.resolve(), []),
                "after": (ROOT, args.settings or ["ppo.compile=true"])}
    results = {(mode, v, o): [] for mode in ("alone", "pair") for v in variants
               for o in OPTIMIZERS}
    with tempfile.TemporaryDirectory() as tmp:
        for turn in range(args.repeats):
            for mode in ("alone", "pair"):
                for v in in_turn(list(variants), turn):
                    root = Path(tmp) / f"{turn}-{mode}-{v}"
                    runs = ({o: train(variants[v], (o,), turn, args.timesteps, root)[o]
                             for o in in_turn(list(OPTIMIZERS), turn)} if mode == "alone"
                            else train(variants[v], OPTIMIZERS, turn, args.timesteps, root))
                    for o, s in runs.items():
                        results[mode, v, o].append(s)
                        print(f"  turn {turn} {mode:5s} {v:6s} {o:12s} steady {s['steady']:6.0f}"
                              f" env steps/s, first iteration and start-up {s['first_s']:5.1f} s,"
                              f" process {s['process_s']:5.1f} s", flush=True)
    print(f"\nRuns of {args.timesteps} steps, {args.repeats} turns; after: "
          f"{' '.join(variants['after'][1])} (medians of per-turn ratios)")
    for mode in ("alone", "pair"):
        for o in OPTIMIZERS:
            after = [s["steady"] for s in results[mode, "after", o]]
            before = [s["steady"] for s in results[mode, "before", o]]
            print(f"  {mode} {o}: steady {statistics.median(before):.0f} -> "
                  f"{statistics.median(after):.0f} env steps/s")
            print_ratio(f"{mode} {o}, after / before", after, before)
        for v in variants:
            print_ratio(f"{mode} {v}, fop-momentum / momentum",
                        [s["steady"] for s in results[mode, v, "fop-momentum"]],
                        [s["steady"] for s in results[mode, v, "momentum"]])
        for v in variants:
            first = [s["first_s"] for o in OPTIMIZERS for s in results[mode, v, o]]
            print(f"  {mode} {v}: first iteration and start-up, median "
                  f"{statistics.median(first):.1f} s")


if __name__ == "__main__":
    main()
