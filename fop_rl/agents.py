"""The agents a command acts with: a run directory's model (best, last, or a checkpoint) or an
rl-baselines3-zoo agent folder, with the normalisation and environment settings it was trained
with.

A run directory (:mod:`fop_rl.rundir`) holds ``best_model.zip`` and ``model.zip``, each with its
statistics, and ``checkpoints/step-N/``. ``last`` in a run that has no ``model.zip`` yet (it was
interrupted, or is still training) is its newest checkpoint that loads, said in a note;
``step-N`` is that checkpoint.

A zoo agent folder is what rl-baselines3-zoo saves and releases (rl-trained-agents):
``<env>.zip``, ``<env>/vecnormalize.pkl`` (where it normalised), ``<env>/config.yml`` (its
hyperparameters: ``normalize``, ``env_wrapper``, ``frame_stack``) and ``<env>/args.yml`` (its
command line: ``env``, ``env_kwargs``). It acts on the environment as gymnasium makes it, with
its own statistics; a wrapper or frame stack it names is refused, as fop-rl does not rebuild
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl import checkpoints, rundir
from fop_rl.rundir import RunError
from fop_rl.saved import OLD_GYM_NOTE, load_model, load_stats

_FILES = {"best": (rundir.BEST_MODEL, rundir.BEST_VECNORM),
          "last": (rundir.MODEL, rundir.VECNORM)}


@dataclass
class LoadedRun:
    config: dict
    model_path: Path
    stats_path: Path
    which: str  # best, last or step-N
    note: str | None = None  # why it is not the model that was asked for


def locate(run_dir: Path, which: str | None = None) -> LoadedRun:
    """The model file of a run (``best``, ``last`` or ``step-N``) and the statistics saved
    with it; RunError naming what is missing.

    ``None`` asks for the best model, or the last one (with a note) in a run that has none;
    ``last`` in a run without ``model.zip`` takes its newest checkpoint that loads (a note).
    """
    if run_dir.is_file() and (run_dir.parent / rundir.CONFIG).exists():
        raise RunError(f"{run_dir} is a file of a run: pass the run directory, "
                       f"{run_dir.parent}")
    if not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} does not exist")
    if not (run_dir / rundir.CONFIG).exists():
        raise RunError(f"{run_dir} is not a run directory: it has no {rundir.CONFIG}")
    config = rundir.read_config(run_dir)
    note = None
    if which is None:
        which = "best"
        if not _has(run_dir, "best"):
            which, note = "last", f"{run_dir} has no best model: using its last model"
    if which == "last" and not _has(run_dir, "last"):
        checkpoint, _ = checkpoints.newest_loadable(run_dir, PPO)
        if checkpoint is None:
            raise RunError(f"{run_dir} has no last model ({rundir.MODEL} with "
                           f"{rundir.VECNORM}) and no checkpoint")
        note = (f"{run_dir} has no {rundir.MODEL} (interrupted or still training): using its "
                f"newest checkpoint that loads, {checkpoint.folder.name}")
        which = checkpoint.folder.name
    if rundir.STEP.fullmatch(which):
        folder = run_dir / rundir.CHECKPOINTS / which
        if not folder.is_dir():
            kept = sorted(p.name for p in (run_dir / rundir.CHECKPOINTS).glob("step-*"))
            raise RunError(f"{run_dir} has no checkpoint {which} (it has: "
                           f"{', '.join(kept) or 'none'})")
        return LoadedRun(config, folder / rundir.MODEL, folder / rundir.VECNORM, which, note)
    model_file, stats_file = _FILES[which]
    if not _has(run_dir, which):
        raise RunError(f"{run_dir} has no {which} model ({model_file} with {stats_file})")
    return LoadedRun(config, run_dir / model_file, run_dir / stats_file, which, note)


def _has(run_dir: Path, which: str) -> bool:
    return all((run_dir / name).exists() for name in _FILES[which])


@dataclass
class Agent:
    """A model to act with, its frozen observation statistics (None: it saw raw observations)
    and the environment settings it acts in (a config's ``env`` section)."""

    source: Path
    kind: str  # run or zoo
    which: str  # best, last, step-N; zoo
    model: PPO
    stats: VecNormalize | None
    env: dict[str, Any]
    note: str | None = None
    config: dict[str, Any] | None = None  # a run's whole config


def is_zoo_folder(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.zip")) and not (path / rundir.CONFIG).exists()


def load(path: Path, which: str | None = None) -> Agent:
    """The agent of a run directory or of a zoo agent folder."""
    if is_zoo_folder(path):
        if which is not None:
            raise RunError(f"{path} is an rl-baselines3-zoo agent: it has one model, leave out "
                           "--model")
        return load_zoo(path)
    run = locate(path, which)
    return Agent(path, "run", run.which, load_model(run.model_path), load_stats(run.stats_path),
                 dict(run.config["env"]), run.note, run.config)


def load_zoo(folder: Path) -> Agent:
    """An rl-baselines3-zoo agent folder; RunError naming what it lacks or cannot be used."""
    zips = sorted(folder.glob("*.zip"))
    if len(zips) != 1:
        raise RunError(f"{folder}: an rl-baselines3-zoo agent folder holds one <env>.zip, found "
                       f"{', '.join(p.name for p in zips)}")
    env_id = zips[0].stem
    inner = folder / env_id
    args, hyper = _zoo_yaml(inner / "args.yml"), _zoo_yaml(inner / "config.yml")
    if args.get("env", env_id) != env_id:
        raise RunError(f"{inner / 'args.yml'} names env {args['env']}, not {env_id}")
    if args.get("env_kwargs"):
        raise RunError(f"{inner / 'args.yml'}: env_kwargs {args['env_kwargs']} are not "
                       "supported: fop-rl evaluates zoo agents on the environment as gymnasium "
                       "makes it")
    for key in ("env_wrapper", "frame_stack"):
        if hyper.get(key):
            raise RunError(f"{inner / 'config.yml'}: {key} {hyper[key]!r} is not supported: "
                           "fop-rl does not rebuild a zoo agent's wrappers")
    import gymnasium

    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error:
        raise RunError(f"{folder}: {env_id} is not a registered gymnasium environment") from None
    stats = None
    if hyper.get("normalize"):
        path = inner / "vecnormalize.pkl"
        if not path.exists():
            raise RunError(f"{folder}: config.yml says normalize but {path} does not exist")
        stats = load_stats(path)
    model = load_model(zips[0], env_id=env_id)
    note = None
    if _old_gym(zips[0]):
        note = f"{folder}: {OLD_GYM_NOTE}"
    env = {"id": env_id, "backend": "gymnasium", "vec_env": "dummy", "n_envs": 1,
           "max_episode_steps": spec.max_episode_steps, "terrain": None, "action_repeat": 1,
           "fall_penalty": -100.0, "reward_scale": 1.0,
           "norm_obs": bool(stats is not None and stats.norm_obs),
           "norm_reward": False, "clip_obs": float(stats.clip_obs) if stats else 10.0}
    return Agent(folder, "zoo", "zoo", model, stats, env, note)


def _old_gym(path: Path) -> bool:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return b"gym.spaces" in z.read("data") and b"gymnasium" not in z.read("data")


class _ZooLoader(yaml.SafeLoader):
    """The zoo's YAML: an OrderedDict of pairs (``!!python/object/apply``), read as a dict."""


def _pairs(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return {key: value for key, value in pairs}


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict",
                           _pairs)


def _zoo_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RunError(f"{path.parent.parent} is not an rl-baselines3-zoo agent folder: "
                       f"{path.relative_to(path.parent.parent)} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_ZooLoader)
    except (yaml.YAMLError, ValueError, TypeError) as e:
        raise RunError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data
