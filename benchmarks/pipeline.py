"""Whole training runs, evaluation included, on the old pipeline and the new one.

A *pipeline* is the part of a run's config that decides its speed:
  gymnasium: the reference environments, evaluation episodes one after another (one env), a P
             heatmap every 10 rollouts: the pipeline of the committed pilot study;
  envpool:   EnvPool's environments, the evaluation episodes side by side (one env each), a
             heatmap every 50 rollouts: the packaged defaults.
Each repeat trains two runs at once, one per core as ``fop-rl sweep --jobs 2`` does (momentum
and fop-momentum, the same seed), once per pipeline, in alternating order. Every run is a real
``fop-rl train`` process; its run.json gives wall time, evaluation time and steps.

Runs of a few hundred thousand steps do not walk yet, and evaluating agents that walk (episodes
of 2,000 steps) costs far more: ``--walker RUN_DIR`` also times one evaluation (5 episodes) of
that run's best model on both pipelines, alternating, so the evaluation share of a study's
budget can be added up from measured parts.

    python benchmarks/pipeline.py [--timesteps 100000] [--repeats 3] [--walker RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from throughput import in_turn, print_ratio, train_args, train_at_once  # beside this

PIPELINES = {
    "gymnasium": ["env.backend=gymnasium", "training.n_eval_envs=1",
                  "training.diagnostics_image_every=10"],
    "envpool": ["env.backend=envpool", "training.n_eval_envs=5",
                "training.diagnostics_image_every=50"],
}
OPTIMIZERS = ("momentum", "fop-momentum")


def train_pair(pipeline: str, seed: int, timesteps: int, root: Path) -> dict[str, dict]:
    """Two runs at once (one per optimizer): each run's run.json, with ``process_s``, the
    seconds from starting the process to its exit (imports and final saves included)."""
    dirs = {name: root / f"{pipeline}-{name}-{seed}" for name in OPTIMIZERS}
    seconds = train_at_once({name: train_args(name, seed, timesteps, dirs[name],
                                              PIPELINES[pipeline]) for name in OPTIMIZERS})
    return {name: {**json.loads((dirs[name] / "run.json").read_text()), "process_s": s}
            for name, s in seconds.items()}


def speeds(status: dict) -> dict[str, float]:
    steps, wall, evaluation = (status["timesteps_done"], status["process_s"],
                               status["eval_time_s"])
    return {"end_to_end": steps / wall, "training": steps / (wall - evaluation),
            "eval_s": evaluation}


def time_walker_evaluations(run_dir: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds for one evaluation (5 deterministic episodes) of a walking policy."""
    import torch

    from fop_rl.evaluate import evaluate

    torch.set_num_threads(1)  # as in a run
    seconds: dict[str, list[float]] = {p: [] for p in PIPELINES}
    settings = {"gymnasium": ("gymnasium", 1), "envpool": ("envpool", 5)}
    for turn in range(repeats):
        for pipeline in in_turn(list(PIPELINES), turn):
            start = time.perf_counter()
            result = evaluate(run_dir, 5, "best", *settings[pipeline])
            seconds[pipeline].append(time.perf_counter() - start)
            print(f"  walker evaluation, {pipeline}: {seconds[pipeline][-1]:.2f} s, mean "
                  f"return {result['mean']:.1f}, mean length "
                  f"{statistics.mean(result['lengths']):.0f}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--walker", type=Path, help="a run whose best model walks")
    parser.add_argument("--walker-repeats", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, dict[str, list[dict]]] = {p: {o: [] for o in OPTIMIZERS} for p in PIPELINES}
    with tempfile.TemporaryDirectory() as tmp:
        for turn in range(args.repeats):
            for pipeline in in_turn(list(PIPELINES), turn):
                pair = train_pair(pipeline, turn, args.timesteps, Path(tmp))
                for name, status in pair.items():
                    s = speeds(status)
                    runs[pipeline][name].append(s)
                    print(f"  repeat {turn} {pipeline:9s} {name:12s} "
                          f"{s['end_to_end']:6.0f} env steps/s end to end, training "
                          f"{s['training']:6.0f}, evaluation {s['eval_s']:.1f} s", flush=True)
    print(f"\nWhole runs of {args.timesteps} steps, two at once, {args.repeats} repeats "
          "(medians of per-repeat ratios)")
    for name in OPTIMIZERS:
        for metric in ("end_to_end", "training"):
            new = [r[metric] for r in runs["envpool"][name]]
            old = [r[metric] for r in runs["gymnasium"][name]]
            print(f"  {name} {metric.replace('_', ' ')}: envpool {statistics.median(new):.0f}"
                  f" vs gymnasium {statistics.median(old):.0f} env steps/s")
            print_ratio(f"{name} {metric.replace('_', ' ')}, envpool / gymnasium", new, old)
        eval_new = [r["eval_s"] for r in runs["envpool"][name]]
        eval_old = [r["eval_s"] for r in runs["gymnasium"][name]]
        print(f"  {name} evaluation time per run: envpool {statistics.median(eval_new):.1f} s "
              f"vs gymnasium {statistics.median(eval_old):.1f} s")
    for pipeline in PIPELINES:
        for metric in ("end_to_end", "training"):
            print_ratio(f"{pipeline}: fop-momentum / momentum, {metric.replace('_', ' ')}",
                        [r[metric] for r in runs[pipeline]["fop-momentum"]],
                        [r[metric] for r in runs[pipeline]["momentum"]])
    if args.walker is not None:
        seconds = time_walker_evaluations(args.walker, args.walker_repeats)
        print(f"\nOne evaluation of {args.walker} (5 episodes), medians of "
              f"{args.walker_repeats}: gymnasium {statistics.median(seconds['gymnasium']):.2f}"
              f" s, envpool {statistics.median(seconds['envpool']):.2f} s")
        print_ratio("evaluation time, envpool / gymnasium", seconds["envpool"],
                    seconds["gymnasium"])


if __name__ == "__main__":
    main()
