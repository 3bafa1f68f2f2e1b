"""The ``fop-rl`` commands, each a function of its parsed arguments returning an exit status.
They import the training libraries (torch, SB3, EnvPool) only once the input is checked."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from fop_rl.cli.display import (
    completed_run_line,
    evaluation_lines,
    print_note,
    print_preconditioners,
    print_trials,
    sweep_line,
)
from fop_rl.cli.overrides import config_overrides, terrain_to_run_on
from fop_rl.cli.parser import EXIT_INTERRUPTED, UsageError
from fop_rl.progress import duration
from fop_rl.rundir import RunError


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a scheduler, kill, a closing session) stops a sweep or tune as Ctrl-C does:
    their runs are processes of their own, which only the parent's clean stop reaches."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_train(args: argparse.Namespace) -> int:
    from fop_rl import config as configuration
    from fop_rl.rundir import default_run_dir, env_folder

    if args.resume:
        if args.run_dir is None:
            raise UsageError("--resume needs --run-dir")
        given = [flag for flag, value in [("--config", args.config), ("--env", args.env_id),
                                          ("--optimizer", args.optimizer), ("--seed", args.seed),
                                          ("--init-from", args.init_from),
                                          ("--init-model", args.init_model),
                                          ("--terrain", args.terrain),
                                          ("--curriculum", args.curriculum),
                                          ("--set", args.overrides)] if value]
        if given:
            raise UsageError(f"--resume continues the run's own config.yaml (and takes "
                             f"--timesteps, its new total): drop {', '.join(given)}")
        cfg = None
    else:
        env_id, overrides = config_overrides(args)
        cfg = configuration.load(args.config, env_id, overrides)
    run_dir = args.run_dir or default_run_dir(env_folder(cfg), cfg["training"]["optimizer"],
                                              cfg["training"]["seed"])
    from fop_rl.train import Interrupted, train  # torch and SB3: once the input is good

    try:
        train(cfg, run_dir, resume=args.resume, force=args.force,
              show_progress=False if args.no_progress else None,
              timesteps=args.timesteps if args.resume else None)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(completed_run_line(run_dir))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from fop_rl.evaluate import evaluate, final_evaluation_path, save_final

    torch.set_num_threads(1)  # a small policy: more threads only contend for the cores

    if args.save:  # before the episodes, which take a while
        if args.model != "last":
            raise UsageError("--save records the final evaluation, of the last model: add "
                             "--model last")
        if args.env_id is not None or args.terrain is not None or args.overrides:
            raise UsageError("--save records the run's final evaluation, on its own "
                             "environment: leave out --env, --terrain and --set")
        final_evaluation_path(args.run_dir)
    if args.env_id is not None and (args.terrain is not None or args.overrides):
        raise UsageError("--terrain and --set env.terrain.* evaluate on the terrain walker: "
                         "leave out --env")
    result = evaluate(args.run_dir, args.episodes, args.model, args.backend, args.envs,
                      args.env_id, terrain_to_run_on(args), args.seed)
    print_note(result)
    if args.save:
        print(f"wrote {save_final(args.run_dir, result)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(evaluation_lines(result, args.run_dir)))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from fop_rl import terrain as terrains
    from fop_rl.evaluate import render

    terrain = terrain_to_run_on(args)
    name = "rollout.mp4" if terrain is None else f"rollout-{terrains.resolve(terrain).name}.mp4"
    out = args.out or args.run_dir / name
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"--out must end in .mp4 or .gif, got {out}")
    if out.exists():
        raise UsageError(f"{out} already exists: choose another --out or remove it")
    if not 0 < args.scale <= 4:
        raise UsageError(f"--scale must be in (0, 4], got {args.scale}")
    result = render(args.run_dir, out, args.episodes, args.model, args.fps, args.scale, terrain)
    print_note(result)
    returns = ", ".join(f"{r:.1f}" for r in result["returns"])
    print(f"wrote {out}: {result['frames']} frames at {result['fps']:.3g} fps "
          f"({result['seconds']:.1f} s, real time), returns {returns}")
    return 0


def cmd_toy(args: argparse.Namespace) -> int:
    from fop_rl import toy

    trajectories = toy.compare(args.problem, args.lr, args.hyper_lr, args.hyper_optimizer,
                               args.iterations)
    for t in trajectories:
        if t.iterations_to_tol is None:
            print(f"{t.name:8s} loss not < 1e-6 within {args.iterations} iterations")
        else:
            print(f"{t.name:8s} loss < 1e-6 after {t.iterations_to_tol} iterations")
    out = args.out or Path(f"toy-{args.problem}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    toy.plot(args.problem, trajectories, str(out))
    print(f"wrote {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import time

    from fop_rl import sweep

    if args.address and args.backend != "ray":
        raise UsageError("--address is for --backend ray")
    env_id, overrides = config_overrides(args)
    jobs = sweep.plan(args.config, env_id, args.optimizers, sweep.parse_seeds(args.seeds),
                      args.runs_dir, args.timesteps, overrides)
    skipped = sum(j.state == "skipped" for j in jobs)
    resumed = sum("--resume" in j.argv for j in jobs)
    print(f"sweep: {len(jobs)} runs in {args.runs_dir} ({skipped} complete, skipped; "
          f"{resumed} to resume)", flush=True)
    backend = (sweep.RayBackend(args.address) if args.backend == "ray"
               else sweep.LocalBackend(args.jobs))
    backend.slots = min(backend.slots, args.jobs)
    started, last_line = time.monotonic(), [0.0]

    def show(jobs: list) -> None:
        tty = sys.stdout.isatty()
        if not tty and time.monotonic() - last_line[0] <= 60:  # logs: a line a minute
            return
        line = sweep_line(sweep.progress(jobs))
        if tty:
            print(f"\r{line}  ", end="", flush=True)
        else:
            print(line, flush=True)
            last_line[0] = time.monotonic()

    try:
        with _sigterm_as_ctrl_c():
            failed = sweep.run(jobs, backend, show)
    except KeyboardInterrupt:
        print("\nsweep interrupted: running runs saved checkpoints; run the same command "
              "again to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if hasattr(backend, "shutdown"):
            backend.shutdown()
    print(f"\nsweep finished in {duration(time.monotonic() - started)}: "
          f"{sum(j.state == 'done' for j in jobs)} run, {skipped} skipped, {len(failed)} failed")
    for job in failed:
        print(f"  FAILED {job.optimizer} seed {job.seed} (exit {job.returncode}): see {job.log}")
    return 1 if failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    from fop_rl import config as configuration
    from fop_rl import sweep, tune
    from fop_rl.rundir import env_folder

    env_id, overrides = config_overrides(args)
    cfg = configuration.load(args.config, env_id, overrides)
    space = cfg.get("search", {}).get(args.optimizer)
    if not space:
        raise UsageError(f"the config has no search space for {args.optimizer} "
                         f"(search.{args.optimizer})")
    seeds = sweep.parse_seeds(args.seeds)
    training = cfg["training"]
    folder = tune.study_folder(args.runs_dir, env_folder(cfg), args.optimizer)
    name = args.study_name or f"{env_folder(cfg)}-{args.optimizer}"
    study = tune.open_study(folder, name, args.storage, args.pruner,
                            training["total_timesteps"], training["eval_freq"], args.heartbeat)
    base = [f"--{k}={v}" for k, v in (("config", args.config), ("env", env_id)) if v]

    def train_argv(seed: int, run_dir: Path, params: dict) -> list[str]:
        argv = ["train", *base, "--run-dir", str(run_dir), "--force", "--no-progress",
                "--seed", str(seed)]
        for item in [*overrides, *(f"optimizers.{args.optimizer}.{k}={v!r}"
                                   for k, v in params.items())]:
            argv += ["--set", item]
        return argv

    tuner = tune.Tuner(study, folder, space, seeds, args.objective, args.jobs, train_argv)
    for number in tuner.shared.fail_orphans():
        print(f"trial {number} was left running by a tune process that died: marked failed")
    done = tuner.shared.finished()
    print(f"tune: study {name!r}, {done} of {args.trials} trials finished; {len(seeds)} "
          f"seed(s) x {training['total_timesteps']} steps per trial, objective "
          f"{args.objective}, pruner {args.pruner}; trials in {folder}", flush=True)

    def on_end(trial, state: str, detail: str) -> None:
        print(f"trial {trial.number} {state.lower()} ({detail}): {trial.params}", flush=True)

    try:
        with _sigterm_as_ctrl_c():
            complete = tuner.run(args.trials, on_end)
    except KeyboardInterrupt:
        print("\ntune interrupted: running trials marked failed; run the same command again "
              "to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        written = tune.write_outputs(study, folder, cfg, args.optimizer)
    print_trials(f"best trials of {name}", tune.summary(study))
    print("wrote " + ", ".join(str(p) for p in written))
    if not complete:
        print(f"tune stopped: as many trials failed as were asked for ({args.trials}); "
              f"trials.csv has their reasons", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fop_rl.references import load as load_references
    from fop_rl.report import report
    from fop_rl.sweep import parse_seeds

    if not 0 < args.ci < 1:
        raise UsageError(f"--ci must be between 0 and 1, got {args.ci}")
    seeds = None if args.seeds is None else set(parse_seeds(args.seeds))
    references = None if args.references is None else load_references(args.references)
    out, problems = report(args.runs_dir, args.out, args.ci, args.reps, args.threshold,
                           args.baseline, args.reference, seeds, references)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    print((out / "report.md").read_text())
    print(f"wrote {out}/: report.md, report.json, curves.csv and two PNGs per environment")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from fop_rl.agents import locate
    from fop_rl.optim import FOP, panels
    from fop_rl.plots import preconditioner_summary
    from fop_rl.saved import load_model

    run = locate(args.run_dir, args.model)
    print_note({"note": run.note})
    model = load_model(run.model_path)
    optimizer = model.policy.optimizer
    if not isinstance(optimizer, FOP):
        raise RunError(f"{run.model_path} was trained with {type(optimizer).__name__}, which "
                       "learns no preconditioner")
    diagnostics = optimizer.diagnostics(model.policy.named_parameters())
    if not diagnostics:
        raise RunError(f"{run.model_path}: the optimizer has not stepped yet")
    print_preconditioners(panels(diagnostics))
    out = args.out or args.run_dir / "preconditioners.png"
    figure = preconditioner_summary(diagnostics)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0
