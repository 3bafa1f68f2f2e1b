"""What the agent acts on and is trained on, where a config changes it: action repeat and the
training reward.

- ``env.action_repeat`` k: each action is held for k simulator steps, their rewards summed;
  an episode ends where the simulator's does (a fall or the end of the course mid-repeat ends
  it there), and the time limit (``env.max_episode_steps``) still counts simulator steps. It
  applies wherever the policy acts: training, evaluations, ``fop-rl evaluate`` and ``render``.
  On gymnasium, :class:`ActionRepeat` wraps each environment (inside SB3's Monitor, whose
  episode lengths then count decisions, as VecMonitor's do on EnvPool, where
  :class:`fop_rl.envpool_env.EnvPoolVecEnv` repeats itself).
- ``env.fall_penalty`` and ``env.reward_scale``: the reward PPO learns from
  (:class:`TrainingReward`, on the training environments only): the walker's fall, which the
  task scores -100, scores ``fall_penalty``, and every reward is multiplied by
  ``reward_scale``. Evaluations and episode logs always score the task itself.

A fall is an episode's terminal step scored exactly -100 (gymnasium's BipedalWalker on a fall
or on leaving the course backwards); both backends mark it ``infos[i]["fall"]``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

FALL = -100.0  # the task's reward at a fall


class ActionRepeat(gymnasium.Wrapper):
    """Each action held for ``repeat`` simulator steps (rewards summed), stopping where the
    episode ends; marks a fall in ``info["fall"]``."""

    def __init__(self, env: gymnasium.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                if terminated and reward == FALL:
                    info = {**info, "fall": True}
                break
        return obs, total, terminated, truncated, info


class TrainingReward(VecEnvWrapper):
    """The reward PPO trains on: a fall scored ``fall_penalty`` instead of -100, every reward
    times ``reward_scale``."""

    def __init__(self, venv: VecEnv, fall_penalty: float, reward_scale: float):
        super().__init__(venv)
        self.fall_penalty, self.reward_scale = fall_penalty, reward_scale

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        rewards = rewards.copy()
        for i in np.flatnonzero(dones):
            if infos[i].get("fall"):
                rewards[i] += self.fall_penalty - FALL
        return obs, rewards * np.float32(self.reward_scale), dones, infos
