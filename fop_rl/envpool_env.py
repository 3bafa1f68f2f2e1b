"""EnvPool's C++ environments behind stable-baselines3's VecEnv interface.

EnvPool steps all environments of a pool in one call and resets an episode on the *next* call
(its last observation first, then a step that ignores the action). SB3 expects the reset on the
*same* step, with the episode's last observation in ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` set on time-outs; :class:`EnvPoolVecEnv` gives exactly that
by resetting the finished environments right away, and repeats actions itself
(``env.action_repeat``: :mod:`fop_rl.wrappers`). Spaces are gymnasium's (EnvPool declares a
wrong lower bound for the walker's observations). Episode statistics come from SB3's VecMonitor,
wrapped around it by :mod:`fop_rl.envs`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from fop_rl.wrappers import FALL

INSTALL_HINT = "envpool is not installed: pip install envpool"

# a simulated step: observations, rewards, terminated, truncated, fall
Simulated = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def installed() -> bool:
    return importlib.util.find_spec("envpool") is not None


class EnvPoolVecEnv(VecEnv):
    """``n_envs`` copies of ``env_id`` in one EnvPool, stepped on one thread.

    ``seed`` seeds the pool as SB3's VecEnvs do: a later ``seed(s)`` takes effect at the next
    ``reset()``, which then rebuilds the pool from ``s``. Terrains come from EnvPool's own
    random generator, so a seed does not give gymnasium's episode for the same seed.
    """

    def __init__(self, env_id: str, n_envs: int, seed: int, max_episode_steps: int,
                 action_repeat: int = 1):
        try:
            import envpool
        except ImportError:
            raise ImportError(INSTALL_HINT) from None
        self._make = lambda s: envpool.make(env_id, env_type="gymnasium", num_envs=n_envs,
                                            seed=s, num_threads=1,
                                            max_episode_steps=max_episode_steps)
        self.env_id, self.max_episode_steps = env_id, max_episode_steps
        self.action_repeat = action_repeat
        reference = gymnasium.make(env_id)
        observation_space, action_space = reference.observation_space, reference.action_space
        reference.close()
        self.render_mode = None
        super().__init__(n_envs, observation_space, action_space)
        self.pool, self._pool_seed = self._make(seed), seed
        self._actions: np.ndarray | None = None
        self._simulated: Simulated | None = None

    def reset(self) -> VecEnvObs:
        if self._seeds[0] is not None and self._seeds[0] != self._pool_seed:
            self.pool.close()
            self.pool, self._pool_seed = self._make(self._seeds[0]), self._seeds[0]
        self._reset_seeds()
        obs, _ = self.pool.reset()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def hand_over(self, simulated: Simulated) -> None:
        """The next ``step_wait`` returns this step, already simulated by :meth:`simulate`,
        instead of taking one (fop_rl.rollout simulates first, and hands the steps where an
        episode ends to the VecEnv layers above)."""
        self._simulated = simulated

    def step_wait(self) -> VecEnvStepReturn:
        simulated, self._simulated = self._simulated, None
        obs, rewards, terminated, truncated, fall = simulated or self.simulate(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(dones)
        if finished.size:
            obs = obs.copy()  # EnvPool may reuse its output buffer
            for i in finished:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                if fall[i]:
                    infos[i]["fall"] = True
            obs[finished], _ = self.pool.reset(finished.astype(np.int32))
        return obs, rewards.astype(np.float32), dones, infos

    def simulate(self, actions: np.ndarray) -> Simulated:
        """``action_repeat`` simulator steps of each environment with its action, rewards
        summed; an environment whose episode ends stops there (EnvPool steps a subset of its
        environments by their ids): observations, rewards, terminated, truncated, and which
        ended in a fall (fop_rl.wrappers). Finished episodes are not reset: ``step_wait``
        does that."""
        obs, rewards, terminated, truncated, _ = self.pool.step(actions)
        fall = terminated & (rewards == FALL)
        if self.action_repeat == 1:
            return obs, rewards, terminated, truncated, fall
        obs, rewards = obs.copy(), rewards.astype(np.float64)
        terminated, truncated = terminated.copy(), truncated.copy()
        going = np.flatnonzero(~(terminated | truncated))
        for _ in range(self.action_repeat - 1):
            if not going.size:
                break
            o, r, te, tr, _ = self.pool.step(actions[going], going.astype(np.int32))
            obs[going], terminated[going], truncated[going] = o, te, tr
            rewards[going] += r
            fall[going] = te & (r == FALL)
            going = going[~(te | tr)]
        return obs, rewards, terminated, truncated, fall

    def close(self) -> None:
        self.pool.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"EnvPool environments have no settable attribute {attr_name!r}")

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None,
                   **method_kwargs) -> list[Any]:
        raise AttributeError(f"EnvPool environments have no method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
