"""Deterministic episodes on given reset seeds, and how each ended: the evaluation of record.

:func:`play` runs an agent's policy (deterministic actions, its observation statistics
frozen) on gymnasium environments, episode ``i`` reset with seed ``seeds[i]``, so that a number
can be reproduced and two agents compared on the same episodes. Each episode records its
return, its length in decisions and in simulator steps, and how it ended: ``fell`` (the task's
-100: the hull touched the ground or the walker left the course backwards), ``finished`` (the
end of the course, or another environment's own termination), ``time limit``. On the walkers,
it also records where: the hull's ``x`` (m), the share of the course from the start to the
finish line, the ground under the hull (:meth:`fop_rl.terrain.BipedalWalkerTerrain.ground_at`:
stump, stairs, pit, rough, flat), and ``at``: that obstacle, or on open ground the next
obstacle if it starts within :data:`NEAR` terrain steps (a walker trips on a stump or stair
before its hull is over it), else the ground. BipedalWalker-v3 and BipedalWalkerHardcore-v3 are
played as the terrain walker's ``flat`` and ``hardcore`` presets, which are those tasks step
for step (tests/test_terrain.py), so that the course's obstacles are known.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.box2d.bipedal_walker import TERRAIN_GRASS, TERRAIN_LENGTH, TERRAIN_STEP

from fop_rl import terrain as terrains
from fop_rl.agents import Agent
from fop_rl.stats import mean_ci
from fop_rl.wrappers import ActionRepeat

FIRST_SEED = 1000  # the first episode's reset seed by default (the hard-terrain leaderboard's)
NEAR = 2.0  # terrain steps: an obstacle this close ahead is where a fall on open ground was
START_X = TERRAIN_STEP * 10  # gymnasium's walker starts here (init_x) ...
FINISH_X = (TERRAIN_LENGTH - TERRAIN_GRASS) * TERRAIN_STEP  # ... and finishes here
_PRESETS = {id_: name for name, id_ in terrains.ENVPOOL_IDS.items()}


def make_env(env_cfg: dict[str, Any]) -> gymnasium.Env:
    """One environment of ``env_cfg`` (its time limit and action repeat) that plays the
    episodes; the packaged walkers as the terrain walker's presets (the same tasks)."""
    env_id, kwargs = env_cfg["id"], {"max_episode_steps": env_cfg["max_episode_steps"]}
    if env_id in _PRESETS:
        env_id, kwargs["terrain"] = terrains.ENV_ID, _PRESETS[env_id]
    elif env_id == terrains.ENV_ID:
        kwargs["terrain"] = env_cfg["terrain"]
    return ActionRepeat(gymnasium.make(env_id, **kwargs), env_cfg["action_repeat"])


def play(agent: Agent, seeds: list[int], env_cfg: dict[str, Any] | None = None
         ) -> list[dict[str, Any]]:
    """One deterministic episode per reset seed, one after another; ``env_cfg``: another
    environment than the agent's. The policy sees one observation per call: a batched forward
    rounds differently with the batch's size, and the walker is chaotic enough that an
    episode's return would then depend on which episodes were played beside it."""
    env = make_env(env_cfg or agent.env)
    records = []
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            episode = {"seed": seed, "return": 0.0, "decisions": 0}
            while True:
                batch = obs[None].astype(np.float32)
                if agent.stats is not None and agent.stats.norm_obs:
                    batch = agent.stats.normalize_obs(batch)
                actions, _ = agent.model.predict(batch, deterministic=True)
                obs, reward, terminated, truncated, info = env.step(actions[0])
                episode["return"] += float(reward)
                episode["decisions"] += 1
                if terminated or truncated:
                    records.append(_ended(env, episode, terminated, info))
                    break
    finally:
        env.close()
    return records


def _ended(env: gymnasium.Env, episode: dict[str, Any], terminated: bool,
           info: dict[str, Any]) -> dict[str, Any]:
    end = "fell" if info.get("fall") else "finished" if terminated else "time limit"
    record = {"seed": episode["seed"], "return": episode["return"],
              "length": episode["decisions"],
              "steps": int(env.get_wrapper_attr("_elapsed_steps")), "end": end}
    walker = env.unwrapped
    if isinstance(walker, terrains.BipedalWalkerTerrain) and walker.hull is not None:
        x = float(walker.hull.position.x)
        share = (x - START_X) / (FINISH_X - START_X)
        record.update(x=round(x, 3), course=round(float(np.clip(share, 0, 1)), 4))
        if end != "finished":
            ground = at = walker.ground_at(x)
            ahead = walker.next_obstacle(x)
            if ground in terrains.GROUND and ahead is not None and ahead[1] <= NEAR:
                at = ahead[0]
            record.update(ground=ground, at=at)
    return record


def summary(records: list[dict[str, Any]], level: float = 0.95, reps: int = 10_000
            ) -> dict[str, Any]:
    """Mean with its percentile-bootstrap CI, median, std, the ends' counts and, on the
    walkers, where the falls were (``at``) and the mean share of the course they reached."""
    returns = np.array([r["return"] for r in records])
    mean, low, high = mean_ci(returns, level, reps)
    result: dict[str, Any] = {
        "mean": mean, "ci": [low, high], "ci_level": level, "median": float(np.median(returns)),
        "std": float(np.std(returns)), "ends": dict(Counter(r["end"] for r in records))}
    falls = [r for r in records if r["end"] == "fell" and "at" in r]
    if any("course" in r for r in records):
        result["falls_at"] = dict(Counter(r["at"] for r in falls).most_common())
        result["fall_course"] = (float(np.mean([r["course"] for r in falls]))
                                 if falls else None)
    return result
