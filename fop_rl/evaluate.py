"""Evaluate an agent (a run's model or a zoo agent) and render it to video, with its saved
normalisation frozen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy

from fop_rl import agents, envpool_env, rundir
from fop_rl import terrain as terrains
from fop_rl.config import ConfigError, continuous_control, envpool_refusal, plain, resolve_terrain
from fop_rl.envs import EVAL_SEED_OFFSET, make_eval_env
from fop_rl.episodes import FIRST_SEED, play, summary
from fop_rl.rundir import RunError
from fop_rl.saved import check_spaces
from fop_rl.stats import mean_ci

MAX_EVAL_ENVS = 10


def evaluate(source: Path, episodes: int = 10, which: str | None = None,
             backend: str | None = None, n_envs: int | None = None,
             env_id: str | None = None, terrain: str | dict | None = None,
             seed: int | None = None) -> dict:
    """Deterministic episodes of an agent (a run's model or an rl-baselines3-zoo agent folder:
    :mod:`fop_rl.agents`) with its statistics frozen, and their summary: the mean with its
    95% bootstrap CI, the median, how the episodes ended and, on the walkers, where it fell.

    On gymnasium, episode ``i`` is reset with seed ``seed + i`` (default
    :data:`fop_rl.episodes.FIRST_SEED`), one at a time (:func:`fop_rl.episodes.play`: an
    episode's number does not depend on the others). On EnvPool, which cannot reset an
    episode with a seed of its own, ``seed`` seeds the pool (default: the run's seed +
    10,000, as its training evaluations) and SB3's evaluate_policy plays on ``n_envs``
    environments (default: one per episode, at most 10). ``backend`` defaults to the one the
    run trained with. ``which``: :func:`fop_rl.agents.locate`'s. ``env_id``: another
    environment with the same spaces (a walker on the hard terrain), with the agent's other
    environment settings and normalisation. ``terrain``: a terrain of the terrain walker, a
    preset or parameters (generalisation to another terrain), on gymnasium unless EnvPool has
    it.
    """
    agent = agents.load(source, which)
    env_cfg = _env_config(agent, env_id, terrain)
    refusal = (envpool_refusal({"env": env_cfg, "training": {"curriculum": None}})
               if env_cfg["id"] == terrains.ENV_ID else None)
    backend = backend or ("gymnasium" if refusal else env_cfg["backend"])
    if backend == "envpool":
        if not envpool_env.installed():
            raise RunError(f"{source} evaluates on envpool, which is not installed: pip "
                           "install envpool, or pass --backend gymnasium")
        if refusal:
            raise RunError(f"envpool {refusal}: pass --backend gymnasium")
    if env_cfg["id"] != agent.env["id"]:
        problem = continuous_control(env_cfg["id"])
        if problem:
            raise RunError(f"--env {env_cfg['id']} {problem}")
        check_spaces(agent.model, env_cfg["id"], f"{source}")
    n_envs = min(n_envs or MAX_EVAL_ENVS, episodes)
    result = {"source": str(source), "kind": agent.kind, "model": agent.which,
              "note": agent.note, "episodes": episodes, "env_id": env_cfg["id"],
              "terrain": plain(env_cfg)["terrain"], "backend": backend}
    if backend == "gymnasium":
        seed = FIRST_SEED if seed is None else seed
        records = play(agent, list(range(seed, seed + episodes)),
                       {**env_cfg, "backend": "gymnasium"})
        result.update(summary(records), seeds=[seed, seed + episodes - 1],
                      returns=[r["return"] for r in records],
                      lengths=[r["length"] for r in records], per_episode=records)
        return result
    seed = _training_seed(agent) + EVAL_SEED_OFFSET if seed is None else seed
    env = make_eval_env(env_cfg, seed - EVAL_SEED_OFFSET, stats=agent.stats, n_envs=n_envs,
                        backend=backend)
    try:
        returns, lengths = evaluate_policy(agent.model, env, n_eval_episodes=episodes,
                                           deterministic=True, return_episode_rewards=True)
    finally:
        env.close()
    mean, low, high = mean_ci(returns)
    result.update(mean=mean, ci=[low, high], ci_level=0.95, median=float(np.median(returns)),
                  std=float(np.std(returns)), pool_seed=seed,
                  returns=[float(r) for r in returns], lengths=[int(n) for n in lengths])
    return result


def _training_seed(agent: agents.Agent) -> int:
    return agent.config["training"]["seed"] if agent.config else 0


def _env_config(agent: agents.Agent, env_id: str | None, terrain: str | dict | None) -> dict:
    """The agent's environment settings, on another environment or terrain if asked; a terrain
    resolved and checked as a config's is (:func:`fop_rl.config.resolve_terrain`)."""
    env_cfg = dict(agent.env)
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


def render(source: Path, out: Path, episodes: int = 1, which: str | None = None,
           fps: float | None = None, scale: float = 1.0, terrain: str | dict | None = None
           ) -> dict:
    """Write a video of deterministic episodes: mp4, or gif when ``out`` ends in .gif.

    The video plays in real time: a frame per decision, which lasts ``env.action_repeat``
    simulator steps, so frames come at the simulator's rate over the repeat (50 fps, 16.7 with
    action repeat 3); at a lower ``fps``, frames are dropped evenly. ``scale`` resizes the
    frames (a GIF is much smaller at 0.5). ``terrain``: a terrain of the terrain walker (a
    preset or parameters) instead of the agent's own environment.
    """
    from moviepy import ImageSequenceClip
    from PIL import Image

    agent = agents.load(source, which)
    env_cfg = _env_config(agent, None, terrain)
    if env_cfg["id"] != agent.env["id"]:
        check_spaces(agent.model, env_cfg["id"], f"{source}")
    env = make_eval_env(env_cfg, _training_seed(agent), stats=agent.stats,
                        render_mode="rgb_array")
    frames, returns = [], []
    try:
        for _ in range(episodes):
            obs, done, total = env.reset(), False, 0.0
            frames.append(env.render())
            while not done:
                action, _ = agent.model.predict(obs, deterministic=True)
                obs, _, dones, _ = env.step(action)
                # the vector env resets itself at the end: its render would show the next start
                done = bool(dones[0])
                total += float(env.get_original_reward()[0])
                if not done:
                    frames.append(env.render())
            returns.append(total)
    finally:
        env.close()
    real_time = video_fps(env.metadata.get("render_fps"), env_cfg["action_repeat"])
    every = max(1, round(real_time / fps)) if fps else 1
    frames, fps = frames[::every], real_time / every
    out.parent.mkdir(parents=True, exist_ok=True)
    if scale != 1.0:
        frames = [_resized(frame, scale) for frame in frames]
    if out.suffix.lower() == ".gif":
        # Pillow directly: moviepy's GIF truncates 1000/fps ms to whole centiseconds (60 -> 50)
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(out, save_all=True, append_images=images[1:], loop=0,
                       duration=round(1000 / fps))
    else:
        ImageSequenceClip(frames, fps=fps).write_videofile(
            str(out), fps=fps, codec="libx264", audio=False, logger=None)
    return {"out": str(out), "frames": len(frames), "fps": fps, "seconds": len(frames) / fps,
            "returns": returns, "note": agent.note}


def _resized(frame: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    height, width = frame.shape[:2]
    size = (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


def video_fps(render_fps: float | None, action_repeat: int) -> float:
    """Frames per second of a real-time video with a frame per decision."""
    return float(render_fps or 50) / action_repeat
