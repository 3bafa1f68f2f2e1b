"""Vectorised, normalised environments, as rl-baselines3-zoo builds them, on either backend.

``env.backend`` picks who simulates: ``gymnasium`` (the reference Python/Box2D implementation,
one Monitor-wrapped env per copy) or ``envpool`` (EnvPool's C++ port, all copies in one pool,
with SB3's VecMonitor for episode statistics). Either way PPO sees an SB3 VecEnv with the same
spaces, time limit, auto-reset semantics and VecNormalize on top. Rendering is gymnasium's.
The terrain walker (:mod:`fop_rl.terrain`) gets ``env.terrain``, resolved (a ``Terrain``); on
EnvPool it is EnvPool's walker or hard terrain, the only two it simulates (config validation
refuses others).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import ResultsWriter
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecMonitor,
    VecNormalize,
)

from fop_rl import runlog, terrain
from fop_rl.envpool_env import EnvPoolVecEnv
from fop_rl.wrappers import FALL, ActionRepeat, TrainingReward

EVAL_SEED_OFFSET = 10_000  # evaluation episodes never share seeds with training ones


def make_train_env(env_cfg: dict[str, Any], gamma: float, seed: int,
                   monitor_dir: Path | None, append: bool = False) -> VecNormalize:
    """``n_envs`` monitored copies with the configured time limit, under VecNormalize.

    Rewards are the training reward (``env.fall_penalty``, ``env.reward_scale``:
    :mod:`fop_rl.wrappers`), scaled by the running std of the return discounted with PPO's
    ``gamma``; the monitor files log the task's own.
    ``append`` continues existing monitor logs (a resumed run) instead of replacing them.
    """
    if append and monitor_dir is not None:
        for path in monitor_dir.glob("*.monitor.csv"):
            runlog.trim_unfinished_line(path)
    venv = _vec_env(env_cfg, env_cfg["n_envs"], seed, monitor_dir, append=append)
    if append and monitor_dir is not None:
        _continue_clocks(venv, monitor_dir)
    venv = TrainingReward(venv, env_cfg["fall_penalty"], env_cfg["reward_scale"])
    return VecNormalize(venv, norm_obs=env_cfg["norm_obs"], norm_reward=env_cfg["norm_reward"],
                        clip_obs=env_cfg["clip_obs"], gamma=gamma)


def _continue_clocks(venv: VecEnv, monitor_dir: Path) -> None:
    """Monitors appending to a resumed run's files count ``t`` from the ``t_start`` in those
    files' headers (the first process's), not from their own start."""
    if isinstance(venv, VecMonitor):  # envpool: one file for all
        venv.t_start = runlog.first_t_start(monitor_dir / "envpool.monitor.csv") or venv.t_start
        return
    for rank in range(venv.num_envs):  # gymnasium: a Monitor, the outermost wrapper, per env
        t_start = runlog.first_t_start(monitor_dir / f"{rank}.monitor.csv")
        if t_start is not None:
            venv.set_attr("t_start", t_start, indices=[rank])


def make_eval_env(env_cfg: dict[str, Any], seed: int, stats: VecNormalize | None = None,
                  render_mode: str | None = None, n_envs: int = 1,
                  backend: str | None = None) -> VecNormalize:
    """``n_envs`` environments whose normalisation is frozen and which leave rewards raw.

    With ``stats``, the statistics saved beside a model (``evaluate.load_stats``); else they are
    synced from the training env before each evaluation (SB3's EvalCallback does that).
    ``backend`` overrides the config's; rendering always uses gymnasium.
    """
    backend = "gymnasium" if render_mode else backend or env_cfg["backend"]
    venv = _vec_env({**env_cfg, "backend": backend}, n_envs, seed + EVAL_SEED_OFFSET, None,
                    render_mode=render_mode)
    # the task's own reward, in the training env's chain of wrappers (SB3 syncs the
    # normalisation of the two along it)
    venv = TrainingReward(venv, FALL, 1.0)
    if stats is not None:
        stats.set_venv(venv)
        env = stats
    else:
        env = VecNormalize(venv, norm_obs=env_cfg["norm_obs"], norm_reward=False,
                           clip_obs=env_cfg["clip_obs"])
    env.training = False
    env.norm_reward = False
    return env


def _vec_env(env_cfg: dict[str, Any], n_envs: int, seed: int, monitor_dir: Path | None,
             render_mode: str | None = None, append: bool = False) -> VecEnv:
    parametric = env_cfg["id"] == terrain.ENV_ID
    if env_cfg["backend"] == "envpool":
        env_id = env_cfg["terrain"].envpool_id if parametric else env_cfg["id"]
        venv = VecMonitor(EnvPoolVecEnv(env_id, n_envs, seed, env_cfg["max_episode_steps"],
                                        env_cfg["action_repeat"]))
        if monitor_dir is not None:  # VecMonitor itself always starts its file anew
            venv.results_writer = ResultsWriter(
                str(monitor_dir / "envpool"), header={"t_start": venv.t_start,
                                                      "env_id": env_cfg["id"]},
                override_existing=not append)
        return venv
    env_kwargs = {"max_episode_steps": env_cfg["max_episode_steps"]}
    if parametric:
        env_kwargs["terrain"] = env_cfg["terrain"]
    if render_mode is not None:
        env_kwargs["render_mode"] = render_mode
    vec_cls = SubprocVecEnv if env_cfg["vec_env"] == "subproc" and n_envs > 1 else DummyVecEnv
    env_id, repeat = env_cfg["id"], env_cfg["action_repeat"]

    def make(**kwargs: Any) -> gymnasium.Env:  # inside SB3's Monitor: it logs decisions
        return ActionRepeat(gymnasium.make(env_id, **kwargs), repeat)

    return make_vec_env(
        make, n_envs=n_envs, seed=seed,
        monitor_dir=None if monitor_dir is None else str(monitor_dir),
        env_kwargs=env_kwargs, vec_env_cls=vec_cls,
        monitor_kwargs={"override_existing": not append},
    )
