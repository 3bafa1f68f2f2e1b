"""The command line's parser: every command, its options and their help; bad input is one
``error:`` line (:class:`UsageError`, exit status 2)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from fop_rl import __version__
from fop_rl.config import BACKENDS, whole_number
from fop_rl.rundir import model_name

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(Exception):
    """Bad command-line input: reported as one ``error:`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and exits 2; we want one line
        raise UsageError(f"{self.prog}: {message}")

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        # argparse reports arguments no command knows as the top-level parser's: name the command
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            prog = " ".join(filter(None, [self.prog, getattr(parsed, "command", None)]))
            raise UsageError(f"{prog}: unrecognized arguments: {' '.join(unknown)}")
        return parsed


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _out_path(text: str) -> Path:
    """An argparse type: a path that can be written (its folders are made when it is)."""
    path = Path(text)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise argparse.ArgumentTypeError(
            f"cannot write under {folder} ({e.strerror or e})") from None
    return path


def _reference(text: str) -> tuple[str, float]:
    """An argparse type: NAME=RETURN."""
    name, sep, value = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=RETURN, got {text!r}") from None


def _config_options(p: argparse.ArgumentParser, what: str = "") -> None:
    """--config and --env, which pick a run's configuration (train, sweep, tune)."""
    p.add_argument("--config", type=Path,
                   help=f"YAML config{what} (default: the packaged one of --env)")
    p.add_argument("--env", dest="env_id", help="environment id, picks its packaged config")


def _parallel_options(p: argparse.ArgumentParser, jobs: str, runs_dir: str) -> None:
    """--jobs and --runs-dir of the commands that train many runs (sweep, tune)."""
    p.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                   help=f"{jobs} (default: the number of cores)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help=f"{runs_dir} (default: runs)")


def _model_name(text: str) -> str:
    try:
        return model_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _model_options(p: argparse.ArgumentParser, zoo: bool = False) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR" + ("|ZOO_AGENT" if zoo else ""),
                   help="a run directory made by fop-rl train" + (
                       ", or an rl-baselines3-zoo agent folder (<env>.zip, <env>/config.yml, "
                       "<env>/args.yml, <env>/vecnormalize.pkl)" if zoo else ""))
    p.add_argument("--model", type=_model_name, metavar="best|last|step-N",
                   help="the best evaluated model, the last one (in a run that is interrupted or "
                        "still training: its newest checkpoint that loads) or the checkpoint of "
                        "step N (default: best, or last in a run not evaluated yet)")


def _init_from_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init-from", type=Path, metavar="RUN_DIR",
                   help="start from this run's policy, value network and normalisation "
                        "statistics (fine-tuning), with a fresh optimizer")
    p.add_argument("--init-model", choices=("best", "last"),
                   help="which model of --init-from (default: best, or last in a run not "
                        "evaluated yet)")


def _episodes_option(p: argparse.ArgumentParser, default: int, what: str) -> None:
    p.add_argument("--episodes", type=_positive_int, default=default,
                   help=f"{what} (default: {default})")


def _terrain_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--terrain", metavar="PRESET",
                   help=f"{what} on this walker terrain (configs/terrains.yaml: flat, stumps, "
                        "pits, stairs, hardcore, ...)")


def _curriculum_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--curriculum", type=Path, metavar="FILE",
                   help=f"{what} through a curriculum of terrains: a YAML list of stages, as "
                        "training.curriculum takes them, e.g. configs/curricula/hardcore.yaml "
                        "(docs/terrains.md)")


def _terrain_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="env.terrain.KEY=VALUE",
                   help="a terrain parameter, on --terrain's preset or the run's terrain, e.g. "
                        "--set env.terrain.stump_height=1.5 (repeatable)")


def _run_options(p: argparse.ArgumentParser, what: str) -> None:
    """What a run trains on and from, for train and sweep: --set, a terrain or curriculum, a
    source run."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set ppo.n_steps=256 (repeatable)")
    _terrain_option(p, what)
    _curriculum_option(p, what)
    _init_from_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fop-rl", description="PPO with First-Order Preconditioning.")
    parser.add_argument("--version", action="version", version=f"fop-rl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("train", help="train PPO (defaults: BipedalWalker-v3, fop-momentum)")
    _config_options(p)
    p.add_argument("--optimizer", help="optimizer name, e.g. momentum, adam, fop-momentum, "
                   "or any torch optimizer by import path, e.g. torch.optim:AdamW")
    p.add_argument("--seed", type=_non_negative_int,
                   help="seed of the run: network, environments, evaluation (default: 0)")
    p.add_argument("--timesteps", type=_positive_int, help="total environment steps")
    p.add_argument("--run-dir", type=Path,
                   help="output folder (default: runs/<env>/<optimizer>/seed-<n>)")
    _run_options(p, "train")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint that loads")
    p.add_argument("--force", action="store_true", help="replace a run already in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser("evaluate", help="deterministic episodes of a trained run or of an "
                            "rl-baselines3-zoo agent")
    _model_options(p, zoo=True)
    p.add_argument("--seed", type=_non_negative_int,
                   help="on gymnasium, episode i resets with seed SEED+i (default: 1000); on "
                        "envpool, the pool's seed (default: the run's seed + 10000)")
    _episodes_option(p, 10, "episodes to run")
    p.add_argument("--backend", choices=BACKENDS,
                   help="simulator (default: the one the run trained with)")
    p.add_argument("--envs", type=_positive_int,
                   help="on envpool, environments run side by side (default: one per episode, at "
                        "most 10; on gymnasium episodes run one at a time)")
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
    _model_options(p, zoo=True)
    p.add_argument("--out", type=_out_path,
                   help="video file (default: RUN_DIR/rollout.mp4, or rollout-<terrain>.mp4 on "
                        "another terrain)")
    _episodes_option(p, 1, "episodes, one after another")
    p.add_argument("--fps", type=_positive_int, help="frames per second (default: the env's)")
    p.add_argument("--scale", type=_positive_float, default=1.0, help="resize frames, e.g. 0.5")
    _terrain_option(p, "render")
    _terrain_set_option(p)

    p = commands.add_parser("sweep", help="many (optimizer, seed) runs, locally or on Ray")
    _config_options(p)
    p.add_argument("--optimizers", nargs="+", required=True, metavar="NAME",
                   help="optimizer names or import paths, e.g. momentum adam torch.optim:AdamW")
    p.add_argument("--seeds", required=True, metavar="SPEC", help="like 0-9 or 0,3,7")
    p.add_argument("--timesteps", type=_positive_int, help="total environment steps per run")
    _parallel_options(p, "runs at once",
                      "root of the runs: <runs-dir>/<env>/<optimizer>/seed-<n>")
    _run_options(p, "train every run")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="where runs execute: local processes or Ray tasks (default: local)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")

    p = commands.add_parser("tune", help="search an optimizer's hyperparameters with Optuna")
    _config_options(p, " with a search section")
    p.add_argument("--optimizer", required=True, help="the optimizer name to tune")
    p.add_argument("--trials", type=_positive_int, default=16,
                   help="finished (complete or pruned) trials to reach (default: 16)")
    p.add_argument("--timesteps", type=_positive_int,
                   help="environment steps per run of a trial (default: the config's)")
    p.add_argument("--seeds", default="100-101", metavar="SPEC",
                   help="tuning seeds, one run each per trial; keep them apart from a study's "
                        "(default: 100-101)")
    _parallel_options(p, "training processes at once",
                      "trials go to <runs-dir>/tune/<env>/<optimizer>/")
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
    p.add_argument("--out", type=_out_path, help="output folder (default: RUNS_DIR/report)")
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
    p.add_argument("--references", metavar="NAME|FOLDER",
                   help="committed runs to set beside these, labelled NAME:<label>, refused "
                        "where the task, budget or evaluation differs: a packaged set (walker: "
                        "the leaderboard of optimizers) or a folder with a reference.yaml")

    p = commands.add_parser("inspect", help="what FOP learned: P per layer (paper figure 5)")
    p.add_argument("run_dir", type=Path, help="a run directory of a FOP optimizer")
    p.add_argument("--out", type=_out_path, help="figure (default: RUN_DIR/preconditioners.png)")
    p.add_argument("--model", type=_model_name, default="last", metavar="best|last|step-N",
                   help="whose optimizer state to read: the best evaluated model, the last one "
                        "(or the newest checkpoint that loads) or the checkpoint of step N "
                        "(default: last)")

    p = commands.add_parser("toy", help="SGD, SGD+FOP and Adam on a 2-D test function")
    p.add_argument("--problem", choices=("booth", "himmelblau", "rosenbrock"), default="booth",
                   help="test function (default: booth)")
    p.add_argument("--out", type=_out_path, help="figure (default: toy-<problem>.png)")
    p.add_argument("--lr", type=_positive_float, help="learning rate of SGD and SGD+FOP")
    p.add_argument("--hyper-lr", type=_positive_float, help="FOP's hyper learning rate")
    p.add_argument("--hyper-optimizer", choices=("adam", "sgd"), help="FOP's hyper-optimizer")
    p.add_argument("--iterations", type=_positive_int, default=20_000,
                   help="iteration budget of each optimizer (default: 20000)")
    return parser
