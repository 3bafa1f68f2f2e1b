"""Evaluate a trained run and render it to video, with its saved normalisation frozen."""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl import envpool_env, rundir
from fop_rl import terrain as terrains
from fop_rl.config import ConfigError, continuous_control, envpool_refusal, plain, resolve_terrain
from fop_rl.envs import make_eval_env
from fop_rl.rundir import RunError
from fop_rl.text import first_line


@dataclass
class LoadedRun:
    config: dict
    model_path: Path
    stats_path: Path
    which: str  # best or last
    note: str | None = None  # why it is not the model that was asked for


_FILES = {"best": (rundir.BEST_MODEL, rundir.BEST_VECNORM),
          "last": (rundir.MODEL, rundir.VECNORM)}


def locate(run_dir: Path, which: str | None = None) -> LoadedRun:
    """The model file (``best`` or ``last``) of a run and the statistics saved with it.

    ``None`` asks for the best model, or the last one (with a note) in a run that has none.
    """
    if not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} does not exist")
    if not (run_dir / rundir.CONFIG).exists():
        raise RunError(f"{run_dir} is not a run directory: it has no {rundir.CONFIG}")
    note = None
    if which is None:
        which = "best"
        if not _has(run_dir, "best") and _has(run_dir, "last"):
            which, note = "last", f"{run_dir} has no best model: using its last model"
    model_name, stats_name = _FILES[which]
    if not _has(run_dir, which):
        raise RunError(f"{run_dir} has no {which} model ({model_name} with {stats_name})")
    return LoadedRun(rundir.read_config(run_dir), run_dir / model_name, run_dir / stats_name,
                     which, note)


def _has(run_dir: Path, which: str) -> bool:
    return all((run_dir / name).exists() for name in _FILES[which])


def load_model(path: Path) -> PPO:
    """PPO.load, with a one-line error for a file that is not a model of ours or does not
    load."""
    try:
        with zipfile.ZipFile(path) as z:
            if "data" not in z.namelist():
                raise RunError(f"{path} is not a stable-baselines3 model (no 'data' entry)")
        return PPO.load(path, device="cpu")
    except RunError:
        raise
    except zipfile.BadZipFile:
        raise RunError(f"{path} is not a valid model file (not a zip archive)") from None
    except Exception as e:  # SB3 raises many kinds for truncated or foreign archives
        raise RunError(f"cannot load {path}: {type(e).__name__}: {first_line(e)}") from None


def load_stats(path: Path) -> VecNormalize:
    """The normalisation statistics saved beside a model, not yet wrapping environments
    (VecNormalize.load without its ``set_venv``), with a one-line error where they do not
    load."""
    try:
        with open(path, "rb") as f:
            stats = pickle.load(f)
    except Exception as e:  # a truncated or foreign pickle raises any of many kinds
        raise RunError(f"cannot load {path}: {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(stats, VecNormalize):
        raise RunError(f"{path} holds a {type(stats).__name__}, not VecNormalize statistics")
    return stats


def check_spaces(model: PPO, env_id: str, what: str) -> None:
    """RunError (starting with ``what``) unless ``model`` acts in ``env_id``'s spaces."""
    reference = gymnasium.make(env_id)
    try:
        for name in ("observation_space", "action_space"):
            mine, theirs = getattr(reference, name), getattr(model, name)
            if mine != theirs:
                theirs_text, mine_text = _space(theirs), _space(mine)
                if theirs_text == mine_text:
                    theirs_text += " (other bounds)"
                raise RunError(f"{what}: its {name.replace('_', ' ')}, {theirs_text}, differs "
                               f"from {env_id}'s, {mine_text}")
    finally:
        reference.close()


def _space(space: gymnasium.Space) -> str:
    return f"{type(space).__name__} of shape {space.shape}"


MAX_EVAL_ENVS = 10


def evaluate(run_dir: Path, episodes: int = 10, which: str | None = None,
             backend: str | None = None, n_envs: int | None = None,
             env_id: str | None = None, terrain: str | dict | None = None) -> dict:
    """Deterministic episodes of the run's model on fresh evaluation environments.

    ``n_envs`` environments (default: one per episode, at most 10) run side by side, each
    with its own share of the episodes (SB3's evaluate_policy). ``backend`` (gymnasium or
    envpool) defaults to the one the run trained with. ``which`` as for :func:`locate`.
    ``env_id``: another environment with the same spaces (a walker on the hard terrain), with
    the run's other environment settings and normalisation. ``terrain``: a terrain of the
    terrain walker, a preset or parameters (generalisation to another terrain), on gymnasium
    unless EnvPool has it.
    """
    run = locate(run_dir, which)
    env_cfg = _env_config(run, env_id, terrain)
    refusal = (envpool_refusal({"env": env_cfg, "training": {"curriculum": None}})
               if env_cfg["id"] == terrains.ENV_ID else None)
    backend = backend or ("gymnasium" if refusal else env_cfg["backend"])
    if backend == "envpool":
        if not envpool_env.installed():
            raise RunError(f"{run_dir} evaluates on envpool, which is not installed: pip "
                           "install envpool, or pass --backend gymnasium")
        if refusal:
            raise RunError(f"envpool {refusal}: pass --backend gymnasium")
    model, stats = load_model(run.model_path), load_stats(run.stats_path)
    if env_cfg["id"] != run.config["env"]["id"]:
        problem = continuous_control(env_cfg["id"])
        if problem:
            raise RunError(f"--env {env_cfg['id']} {problem}")
        check_spaces(model, env_cfg["id"], f"{run_dir}")
    n_envs = min(n_envs or MAX_EVAL_ENVS, episodes)
    env = make_eval_env(env_cfg, run.config["training"]["seed"], stats=stats,
                        n_envs=n_envs, backend=backend)
    try:
        returns, lengths = evaluate_policy(model, env, n_eval_episodes=episodes,
                                           deterministic=True, return_episode_rewards=True)
    finally:
        env.close()
    return {"run_dir": str(run_dir), "model": run.which, "note": run.note, "episodes": episodes,
            "env_id": env_cfg["id"], "terrain": plain(env_cfg)["terrain"], "backend": backend,
            "mean": float(np.mean(returns)),
            "std": float(np.std(returns)),
            "returns": [float(r) for r in returns], "lengths": [int(n) for n in lengths]}


def _env_config(run: LoadedRun, env_id: str | None, terrain: str | dict | None) -> dict:
    """The run's environment settings, on another environment or terrain if asked; a terrain
    resolved and checked as a config's is (:func:`fop_rl.config.resolve_terrain`)."""
    env_cfg = dict(run.config["env"])
    if terrain is not None:
        env_id = terrains.ENV_ID
    if env_id is not None and env_id != env_cfg["id"]:
        env_cfg.update(id=env_id, terrain=None)
    if terrain is not None:
        env_cfg["terrain"] = terrain
    if env_cfg["id"] == terrains.ENV_ID:
        # the backend is chosen after (evaluate): check the terrain alone here
        holder = {"env": {**env_cfg, "backend": "gymnasium"}, "training": {"curriculum": None}}
        try:
            resolve_terrain(holder, "--terrain")
        except ConfigError as e:
            raise RunError(str(e)) from None
        env_cfg["terrain"] = holder["env"]["terrain"]
    return env_cfg


def final_evaluation_path(run_dir: Path) -> Path:
    """Where the run's final evaluation goes: an error if it has one (never overwritten)."""
    path = run_dir / rundir.FINAL_EVALUATION
    if path.exists():
        raise RunError(f"{path} already exists: remove it to record another")
    return path


def save_final(run_dir: Path, result: dict) -> Path:
    """Record an evaluation of the last model as the run's final one."""
    if result["model"] != "last":
        raise RunError("the final evaluation is of the last model: use --model last")
    path = final_evaluation_path(run_dir)
    rundir.atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return path


def render(run_dir: Path, out: Path, episodes: int = 1, which: str | None = None,
           fps: int | None = None, scale: float = 1.0, terrain: str | dict | None = None
           ) -> dict:
    """Write a video of deterministic episodes: mp4, or gif when ``out`` ends in .gif.

    The video plays in real time: at a lower ``fps`` than the environment's, frames are
    dropped evenly. ``scale`` resizes the frames (a GIF is much smaller at 0.5). ``terrain``:
    a terrain of the terrain walker (a preset or parameters) instead of the run's own
    environment.
    """
    from moviepy import ImageSequenceClip

    run = locate(run_dir, which)
    model, stats = load_model(run.model_path), load_stats(run.stats_path)
    env_cfg = _env_config(run, None, terrain)
    if env_cfg["id"] != run.config["env"]["id"]:
        check_spaces(model, env_cfg["id"], f"{run_dir}")
    env = make_eval_env(env_cfg, run.config["training"]["seed"], stats=stats,
                        render_mode="rgb_array")
    frames, returns = [], []
    try:
        for _ in range(episodes):
            obs, done, total = env.reset(), False, 0.0
            frames.append(env.render())
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, _, dones, _ = env.step(action)
                # the vector env resets itself at the end: its render would show the next start
                done = bool(dones[0])
                total += float(env.get_original_reward()[0])
                if not done:
                    frames.append(env.render())
            returns.append(total)
    finally:
        env.close()
    native = int(env.metadata.get("render_fps") or 50)
    fps = min(fps or native, native)
    frames = frames[:: max(1, round(native / fps))]
    out.parent.mkdir(parents=True, exist_ok=True)
    clip = ImageSequenceClip(frames, fps=fps)
    if scale != 1.0:
        clip = clip.resized(scale)
    if out.suffix.lower() == ".gif":
        clip.write_gif(str(out), fps=fps, logger=None)
    else:
        clip.write_videofile(str(out), fps=fps, codec="libx264", audio=False, logger=None)
    return {"out": str(out), "frames": len(frames), "returns": returns, "note": run.note}
