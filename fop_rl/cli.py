"""The ``fop-rl`` command line: train, evaluate, render, toy (and sweep, report, inspect).

Bad input of any kind ends with one line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from fop_rl.config import BACKENDS, ConfigError
from fop_rl.progress import duration
from fop_rl.rundir import RunError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


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


class UsageError(Exception):
    """Bad command-line input: reported as one ``error:`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and exits 2; we want one line
        raise UsageError(f"{self.prog}: {message}")


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _reference(text: str) -> tuple[str, float]:
    """An argparse type: NAME=RETURN."""
    name, sep, value = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=RETURN, got {text!r}") from None


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory made by fop-rl train")
    p.add_argument("--model", choices=("best", "last"),
                   help="the best evaluated model or the last one (default: best, or last in a "
                        "run not evaluated yet)")


def _init_from_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init-from", type=Path, metavar="RUN_DIR",
                   help="start from this run's policy, value network and normalisation "
                        "statistics (fine-tuning), with a fresh optimizer")
    p.add_argument("--init-model", choices=("best", "last"),
                   help="which model of --init-from (default: best, or last in a run not "
                        "evaluated yet)")


def _init_overrides(args: argparse.Namespace) -> list[str]:
    """--init-from and --init-model as config overrides (JSON strings are YAML scalars)."""
    if args.init_model and not args.init_from:
        raise UsageError("--init-model needs --init-from")
    if not args.init_from:
        return []
    items = [f"training.init_from={json.dumps(str(args.init_from))}"]
    if args.init_model:
        items.append(f"training.init_model={args.init_model}")
    return items


def _terrain_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--terrain", metavar="PRESET",
                   help=f"{what} on this walker terrain (configs/terrains.yaml: flat, stumps, "
                        "pits, stairs, hardcore, ...)")


def _curriculum_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--curriculum", type=Path, metavar="FILE",
                   help=f"{what} through a curriculum of terrains: a YAML list of stages, as "
                        "training.curriculum takes them (README: Curriculum)")


def _terrain_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="env.terrain.KEY=VALUE",
                   help="a terrain parameter, on --terrain's preset or the run's terrain, e.g. "
                        "--set env.terrain.stump_height=1.5 (repeatable)")


def _checked_terrain(flag: str, spec):
    """A terrain given on the command line, checked at once (no training library needed)."""
    from fop_rl import terrain as terrains

    try:
        terrains.resolve(spec)
    except terrains.TerrainError as e:
        raise UsageError(f"{flag}: {e}") from None
    return spec


def _terrain_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """--terrain or --curriculum as the terrain walker's env id (unless --config names one)
    and an override that comes before --set's, so that ``--set env.terrain.<param>=...``
    refines the preset."""
    curriculum_file = getattr(args, "curriculum", None)
    if args.terrain is None and curriculum_file is None:
        return args.env_id, []
    from fop_rl.terrain import ENV_ID

    flag = "--terrain" if curriculum_file is None else "--curriculum"
    if args.terrain is not None and curriculum_file is not None:
        raise UsageError("--curriculum: its last stage is the run's terrain: leave out "
                         "--terrain")
    if args.env_id not in (None, ENV_ID):
        raise UsageError(f"{flag} runs {ENV_ID}: leave out --env {args.env_id}")
    env_id = args.env_id or (None if args.config else ENV_ID)
    if curriculum_file is None:
        _checked_terrain("--terrain", args.terrain)
        return env_id, [f"env.terrain={json.dumps(args.terrain)}"]
    return env_id, [f"training.curriculum={json.dumps(_read_curriculum(curriculum_file))}"]


def _read_curriculum(path: Path) -> list:
    """A --curriculum file's stages, checked."""
    from fop_rl import curriculum
    from fop_rl.text import first_line, read_yaml

    try:
        stages = read_yaml(path.read_text())
    except OSError as e:
        raise UsageError(f"--curriculum {path}: cannot read it ({first_line(e)})") from None
    except ValueError as e:  # YAMLError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"--curriculum {path}: not valid YAML ({first_line(e)})") from None
    try:
        curriculum.parse(stages)
    except curriculum.CurriculumError as e:
        raise UsageError(f"--curriculum {path}: {e}") from None
    return stages


def _terrain_to_run_on(args: argparse.Namespace):
    """evaluate's and render's terrain: --terrain (else the run's own), refined by --set
    env.terrain.<parameter>=VALUE; None: the run's own environment."""
    if not args.overrides:
        return None if args.terrain is None else _checked_terrain("--terrain", args.terrain)
    from fop_rl import rundir
    from fop_rl.config import set_key
    from fop_rl.terrain import ENV_ID

    wrong = [item for item in args.overrides if not item.startswith("env.terrain.")]
    if wrong:
        raise UsageError(f"--set {wrong[0]!r}: {args.command} takes env.terrain.<parameter>="
                         "VALUE only (the run's other settings are its own)")
    base = args.terrain
    if base is None:
        env = rundir.read_config(args.run_dir)["env"] if args.run_dir.is_dir() else {}
        base = env.get("terrain") if env.get("id") == ENV_ID else None
    holder = {"env": {"terrain": base}}
    for item in args.overrides:
        set_key(holder, item, source="--set")
    return _checked_terrain("--set", holder["env"]["terrain"])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fop-rl", description="PPO with First-Order Preconditioning.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("train", help="train PPO (defaults: BipedalWalker-v3, fop-momentum)")
    p.add_argument("--config", type=Path, help="YAML config (default: the packaged one of --env)")
    p.add_argument("--env", dest="env_id", help="environment id, picks its packaged config")
    p.add_argument("--optimizer", help="optimizer name, e.g. momentum, adam, fop-momentum")
    p.add_argument("--seed", type=_non_negative_int,
                   help="seed of the run: network, environments, evaluation (default: 0)")
    p.add_argument("--timesteps", type=_positive_int, help="total environment steps")
    p.add_argument("--run-dir", type=Path,
                   help="output folder (default: runs/<env>/<optimizer>/seed-<n>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set ppo.n_steps=256 (repeatable)")
    _terrain_option(p, "train")
    _curriculum_option(p, "train")
    _init_from_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint that loads")
    p.add_argument("--force", action="store_true", help="replace a run already in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser("evaluate", help="deterministic episodes of a trained run")
    _model_options(p)
    p.add_argument("--episodes", type=_positive_int, default=10,
                   help="episodes to run (default: 10)")
    p.add_argument("--backend", choices=BACKENDS,
                   help="simulator (default: the one the run trained with)")
    p.add_argument("--envs", type=_positive_int,
                   help="environments run side by side (default: one per episode, at most 10)")
    p.add_argument("--env", dest="env_id", metavar="ENV_ID",
                   help="evaluate on another environment with the same spaces, e.g. a walker "
                        "on BipedalWalkerHardcore-v3 (default: the run's)")
    _terrain_option(p, "evaluate")
    _terrain_set_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", action="store_true",
                   help="record it as the run's final evaluation (final_evaluation.json, which "
                        "fop-rl report reads; with --model last, for a run that has none)")

    p = commands.add_parser("render", help="a video of a trained agent (mp4, or gif)")
    _model_options(p)
    p.add_argument("--out", type=Path,
                   help="video file (default: RUN_DIR/rollout.mp4, or rollout-<terrain>.mp4 on "
                        "another terrain)")
    p.add_argument("--episodes", type=_positive_int, default=1,
                   help="episodes, one after another (default: 1)")
    p.add_argument("--fps", type=_positive_int, help="frames per second (default: the env's)")
    p.add_argument("--scale", type=float, default=1.0, help="resize frames, e.g. 0.5")
    _terrain_option(p, "render")
    _terrain_set_option(p)

    p = commands.add_parser("sweep", help="many (optimizer, seed) runs, locally or on Ray")
    p.add_argument("--config", type=Path, help="YAML config (default: the packaged one of --env)")
    p.add_argument("--env", dest="env_id", help="environment id, picks its packaged config")
    p.add_argument("--optimizers", nargs="+", required=True, metavar="NAME",
                   help="optimizer names, e.g. momentum adam fop-momentum")
    p.add_argument("--seeds", required=True, metavar="SPEC", help="like 0-9 or 0,3,7")
    p.add_argument("--timesteps", type=_positive_int, help="total environment steps per run")
    p.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                   help="runs at once (default: the number of cores)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help="root of the runs: <runs-dir>/<env>/<optimizer>/seed-<n> (default: runs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for every run (repeatable)")
    _terrain_option(p, "train every run")
    _curriculum_option(p, "train every run")
    _init_from_options(p)
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="where runs execute: local processes or Ray tasks (default: local)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")

    p = commands.add_parser("tune", help="search an optimizer's hyperparameters with Optuna")
    p.add_argument("--config", type=Path,
                   help="YAML config with a search section (default: the packaged one of --env)")
    p.add_argument("--env", dest="env_id", help="environment id, picks its packaged config")
    p.add_argument("--optimizer", required=True, help="the optimizer name to tune")
    p.add_argument("--trials", type=_positive_int, default=16,
                   help="finished (complete or pruned) trials to reach (default: 16)")
    p.add_argument("--timesteps", type=_positive_int,
                   help="environment steps per run of a trial (default: the config's)")
    p.add_argument("--seeds", default="100-101", metavar="SPEC",
                   help="tuning seeds, one run each per trial; keep them apart from a study's "
                        "(default: 100-101)")
    p.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                   help="training processes at once (default: the number of cores)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help="trials go to <runs-dir>/tune/<env>/<optimizer>/ (default: runs)")
    p.add_argument("--storage",
                   help="Optuna storage URL shared by machines, e.g. postgresql://... or "
                        "sqlite:///tune.db (default: a journal file in the study's folder)")
    p.add_argument("--study-name", help="default: <env>-<optimizer>")
    p.add_argument("--heartbeat", type=_positive_int, default=60, metavar="SECONDS",
                   help="with a database --storage: how often running trials beat; a trial "
                        "silent for 3 beats (its tune process died, on any machine) is marked "
                        "failed by the next tune on the study (default: 60)")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                   help="stop trials that fall behind (default: median)")
    p.add_argument("--objective", choices=("final", "auc"), default="final",
                   help="final: best-so-far return at the budget; auc: its mean over the "
                        "evaluations (default: final)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value for every trial (repeatable)")
    _terrain_option(p, "tune")

    p = commands.add_parser("report", help="aggregate seeds: curves, tables, CIs, figures")
    p.add_argument("runs_dir", type=Path, help="a folder of <env>/<label>/seed-<n> runs")
    p.add_argument("--out", type=Path, help="output folder (default: RUNS_DIR/report)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap resamples")
    p.add_argument("--threshold", type=float, help="report steps to reach this return")
    p.add_argument("--reference", metavar="NAME=RETURN", type=_reference,
                   help="a horizontal line on the figures, e.g. 'common start=-60.5'")
    p.add_argument("--baseline", action="append", metavar="LABEL",
                   help="a label report.md compares every label with (repeatable; default: "
                        "momentum and adam, those present)")
    p.add_argument("--seeds", metavar="SPEC",
                   help="only these seeds, like 0-3 or 0,3,7 (default: every seed found)")

    p = commands.add_parser("inspect", help="what FOP learned: P per layer (paper figure 5)")
    p.add_argument("run_dir", type=Path, help="a run directory of a FOP optimizer")
    p.add_argument("--out", type=Path, help="figure (default: RUN_DIR/preconditioners.png)")
    p.add_argument("--model", choices=("best", "last"), default="last",
                   help="whose optimizer state to read (default: last)")

    p = commands.add_parser("toy", help="SGD, SGD+FOP and Adam on a 2-D test function")
    p.add_argument("--problem", choices=("booth", "himmelblau", "rosenbrock"), default="booth",
                   help="test function (default: booth)")
    p.add_argument("--out", type=Path, help="figure (default: toy-<problem>.png)")
    p.add_argument("--lr", type=float, help="learning rate of SGD and SGD+FOP")
    p.add_argument("--hyper-lr", type=float, help="FOP's hyper learning rate")
    p.add_argument("--hyper-optimizer", choices=("adam", "sgd"), help="FOP's hyper-optimizer")
    p.add_argument("--iterations", type=_positive_int, default=20_000,
                   help="iteration budget of each optimizer (default: 20000)")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from fop_rl import config as configuration
    from fop_rl.rundir import default_run_dir, env_folder

    if args.resume:
        if args.run_dir is None:
            raise UsageError("--resume needs --run-dir")
        given = [flag for flag, value in [("--config", args.config), ("--env", args.env_id),
                                          ("--optimizer", args.optimizer), ("--seed", args.seed),
                                          ("--timesteps", args.timesteps),
                                          ("--init-from", args.init_from),
                                          ("--init-model", args.init_model),
                                          ("--terrain", args.terrain),
                                          ("--curriculum", args.curriculum),
                                          ("--set", args.overrides)] if value]
        if given:
            raise UsageError(f"--resume continues the run's own config.yaml: drop "
                             f"{', '.join(given)}")
        cfg = None
    else:
        env_id, terrain = _terrain_overrides(args)
        overrides = [*terrain, *args.overrides, *_init_overrides(args)]
        if args.optimizer:
            overrides.append(f"training.optimizer={args.optimizer}")
        if args.seed is not None:
            overrides.append(f"training.seed={args.seed}")
        if args.timesteps is not None:
            overrides.append(f"training.total_timesteps={args.timesteps}")
        cfg = configuration.load(args.config, env_id, overrides)
    run_dir = args.run_dir or default_run_dir(env_folder(cfg), cfg["training"]["optimizer"],
                                              cfg["training"]["seed"])
    from fop_rl.train import Interrupted, train  # torch and SB3: once the input is good

    try:
        train(cfg, run_dir, resume=args.resume, force=args.force,
              show_progress=False if args.no_progress else None)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"run complete: {run_dir}")
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
                      args.env_id, _terrain_to_run_on(args))
    _print_note(result)
    if args.save:
        print(f"wrote {save_final(args.run_dir, result)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} model of {args.run_dir}: mean return {result['mean']:.2f} "
              f"+/- {result['std']:.2f} over {args.episodes} episodes of {result['env_id']}"
              f"{_terrain_text(result)} ({result['backend']})")
        for i, (r, n) in enumerate(zip(result["returns"], result["lengths"], strict=True)):
            print(f"  episode {i}: return {r:.2f}, {n} steps")
    return 0


def _terrain_text(result: dict) -> str:
    """`` on terrain NAME`` for the terrain walker's episodes (a preset's name or custom-<hash>)."""
    from fop_rl import terrain as terrains

    if result["env_id"] != terrains.ENV_ID:
        return ""
    return f" on terrain {terrains.describe(result['terrain'])}"


def cmd_render(args: argparse.Namespace) -> int:
    from fop_rl import terrain as terrains
    from fop_rl.evaluate import render

    terrain = _terrain_to_run_on(args)
    name = "rollout.mp4" if terrain is None else f"rollout-{terrains.describe(terrain)}.mp4"
    out = args.out or args.run_dir / name
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"--out must end in .mp4 or .gif, got {out}")
    if out.exists():
        raise UsageError(f"{out} already exists: choose another --out or remove it")
    if not 0 < args.scale <= 4:
        raise UsageError(f"--scale must be in (0, 4], got {args.scale}")
    result = render(args.run_dir, out, args.episodes, args.model, args.fps, args.scale, terrain)
    _print_note(result)
    returns = ", ".join(f"{r:.1f}" for r in result["returns"])
    print(f"wrote {out}: {result['frames']} frames, returns {returns}")
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
    toy.plot(args.problem, trajectories, str(out))
    print(f"wrote {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import time

    from fop_rl import sweep

    if args.address and args.backend != "ray":
        raise UsageError("--address is for --backend ray")
    env_id, terrain = _terrain_overrides(args)
    jobs = sweep.plan(args.config, env_id, args.optimizers, sweep.parse_seeds(args.seeds),
                      args.runs_dir, args.timesteps,
                      [*terrain, *args.overrides, *_init_overrides(args)])
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
        p = sweep.progress(jobs)
        line = (f"done {p['done'] + p['skipped']:.0f} / running {p['running']:.0f} / failed "
                f"{p['failed']:.0f} / pending {p['pending']:.0f} | "
                f"{p['steps_per_s']:.0f} env steps/s | ETA {duration(p['eta_s'])}")
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
    from rich.console import Console
    from rich.table import Table

    from fop_rl import config as configuration
    from fop_rl import sweep, tune
    from fop_rl.rundir import env_folder

    env_id, terrain = _terrain_overrides(args)
    overrides = [*terrain, *args.overrides, f"training.optimizer={args.optimizer}"]
    if args.timesteps is not None:
        overrides.append(f"training.total_timesteps={args.timesteps}")
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
    for number in tuner.fail_orphans():
        print(f"trial {number} was left running by a tune process that died: marked failed")
    done = tuner.finished()
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
    table = Table(title=f"best trials of {name}")
    rows = tune.summary(study)
    for column in (rows[0] if rows else {"number": None, "objective": None}):
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)
    print("wrote " + ", ".join(str(p) for p in written))
    if not complete:
        print(f"tune stopped: as many trials failed as were asked for ({args.trials}); "
              f"trials.csv has their reasons", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fop_rl.report import report
    from fop_rl.sweep import parse_seeds

    if not 0 < args.ci < 1:
        raise UsageError(f"--ci must be between 0 and 1, got {args.ci}")
    seeds = None if args.seeds is None else set(parse_seeds(args.seeds))
    out, problems = report(args.runs_dir, args.out, args.ci, args.reps, args.threshold,
                           args.baseline, args.reference, seeds)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    print((out / "report.md").read_text())
    print(f"wrote {out}/: report.md, report.json, curves.csv and two PNGs per environment")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from fop_rl.evaluate import load_model, locate
    from fop_rl.optim import FOP, panels
    from fop_rl.plots import preconditioner_summary

    run = locate(args.run_dir, args.model)
    model = load_model(run.model_path)
    optimizer = model.policy.optimizer
    if not isinstance(optimizer, FOP):
        raise RunError(f"{run.model_path} was trained with {type(optimizer).__name__}, which "
                       "learns no preconditioner")
    diagnostics = optimizer.diagnostics(model.policy.named_parameters())
    if not diagnostics:
        raise RunError(f"{run.model_path}: the optimizer has not stepped yet")
    print(f"{'layer':40s} {'structure':9s} {'||P||_F':>9s} {'eig min':>9s} {'eig max':>9s} "
          f"{'cond':>9s} {'angle':>6s}")
    for d in panels(diagnostics):
        cond = d.eig_max / d.eig_min if d.eig_min > 0 else float("inf")
        print(f"{d.name:40s} {d.structure:9s} {d.frobenius_norm:9.3f} {d.eig_min:9.3g} "
              f"{d.eig_max:9.3g} {cond:9.3g} {d.angle_deg:5.1f}d")
    out = args.out or args.run_dir / "preconditioners.png"
    figure = preconditioner_summary(diagnostics)
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


def _print_note(result: dict) -> None:
    """Why the model used is not the one asked for, if it is not."""
    if result["note"]:
        print(f"note: {result['note']}", file=sys.stderr)


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "tune": cmd_tune, "report": cmd_report,
            "inspect": cmd_inspect, "evaluate": cmd_evaluate,
            "render": cmd_render, "toy": cmd_toy}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
