"""PPO's rollout on the packaged training environments, with fewer Python calls per step.

The training environments on EnvPool are four VecEnv layers (:mod:`fop_rl.envs`): SB3's
VecNormalize over the training reward (:mod:`fop_rl.wrappers`) over SB3's VecMonitor over
EnvPool's adapter (:mod:`fop_rl.envpool_env`). SB3's ``collect_rollouts`` passes every step
through all four, each a Python call with its info dicts and copies. On a step where no
episode ends (all but a few in a hundred), :func:`collect` does their work itself, on their
own state and with their own methods: EnvPool's step, VecMonitor's episode sums, the training
reward's scale, VecNormalize's running statistics and normalisation. A step where an episode
ends is handed to the layers as SB3's loop hands it (episode records, monitor rows, terminal
observations, resets, the time-limit bootstrap). Buffer rows are written in place; callbacks
are called as SB3 calls them, with the same local names. The rollouts, statistics and episodes
are SB3's bit for bit (tests/test_rollout.py); it saves about 7% of a rollout's process CPU
(benchmarks/rollout_loop.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from fop_rl.envpool_env import EnvPoolVecEnv
from fop_rl.wrappers import TrainingReward


def fits(model: PPO, env: VecEnv) -> bool:
    """Whether ``env`` is the packaged training stack on EnvPool, normalising observations as
    it trains, and ``model`` a policy :func:`collect` takes (continuous actions, no gSDE)."""
    return (isinstance(env, VecNormalize) and env.training and env.norm_obs
            and isinstance(env.obs_rms, RunningMeanStd)
            and isinstance(env.venv, TrainingReward) and isinstance(env.venv.venv, VecMonitor)
            and isinstance(env.venv.venv.venv, EnvPoolVecEnv)
            and isinstance(model.action_space, spaces.Box) and not model.use_sde
            and not model.policy.squash_output)


def collect(model: PPO, env: VecNormalize, callback: BaseCallback, rollout_buffer: RolloutBuffer,
            n_rollout_steps: int, forward: Callable[[torch.Tensor], tuple]) -> bool:
    """SB3's ``collect_rollouts`` for an ``env`` that :func:`fits`: the rollout in
    ``rollout_buffer``, returns and advantages computed; False if a callback stopped it.
    ``forward``: the policy's forward on a batch of observations (actions, values and
    log-probabilities), such as a compiled one."""
    reward = env.venv
    monitor, adapter = reward.venv, reward.venv.venv
    policy = model.policy
    low, high = model.action_space.low, model.action_space.high
    scale = np.float32(reward.reward_scale)
    policy.set_training_mode(False)
    rollout_buffer.reset()
    callback.on_rollout_start()
    n_steps = 0
    while n_steps < n_rollout_steps:
        with torch.no_grad():
            actions, values, log_probs = forward(torch.from_numpy(model._last_obs))
        actions = actions.numpy()
        clipped_actions = np.clip(actions, low, high)
        simulated = adapter.simulate(clipped_actions)
        dones = simulated[2] | simulated[3]
        ended = dones.any()
        if ended:
            adapter.hand_over(simulated)
            new_obs, rewards, dones, infos = env.step_wait()
        else:
            new_obs, rewards = _normalised(env, monitor, simulated[0], simulated[1], scale)
            infos = [{} for _ in range(env.num_envs)]
        model.num_timesteps += env.num_envs
        callback.update_locals({
            "self": model, "env": env, "callback": callback, "rollout_buffer": rollout_buffer,
            "n_rollout_steps": n_rollout_steps, "n_steps": n_steps, "actions": actions,
            "values": values, "log_probs": log_probs, "clipped_actions": clipped_actions,
            "new_obs": new_obs, "rewards": rewards, "dones": dones, "infos": infos})
        if not callback.on_step():
            return False
        n_steps += 1
        if ended:
            model._update_info_buffer(infos, dones)
            _bootstrap_time_limits(model, rewards, dones, infos)
        _write_row(rollout_buffer, model._last_obs, actions, rewards,
                   model._last_episode_starts, values, log_probs)
        model._last_obs, model._last_episode_starts = new_obs, dones
    with torch.no_grad():
        values = policy.predict_values(torch.from_numpy(new_obs))
    rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
    callback.update_locals({"values": values, "dones": dones, "new_obs": new_obs})
    callback.on_rollout_end()
    return True


def _normalised(env: VecNormalize, monitor: VecMonitor, obs: np.ndarray, rewards: np.ndarray,
                scale: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """What VecMonitor, the training reward and VecNormalize make of a step where no episode
    ends: the episode sums, then the normalised observations and rewards, with their running
    statistics updated."""
    rewards = rewards.astype(np.float32)
    monitor.episode_returns += rewards
    monitor.episode_lengths += 1
    rewards = rewards * scale
    env.old_obs, env.old_reward = obs, rewards
    env.obs_rms.update(obs)
    obs = env._normalize_obs(obs, env.obs_rms).astype(np.float32)
    env._update_reward(rewards)
    return obs, env.normalize_reward(rewards)


def _bootstrap_time_limits(model: PPO, rewards: np.ndarray, dones: np.ndarray,
                           infos: list[dict]) -> None:
    """An episode cut by the time limit: its last reward plus the discounted value of where it
    stopped (SB3's GitHub issue #633)."""
    for i in np.flatnonzero(dones):
        if infos[i].get("TimeLimit.truncated", False):
            last = model.policy.obs_to_tensor(infos[i]["terminal_observation"])[0]
            with torch.no_grad():
                rewards[i] += model.gamma * model.policy.predict_values(last)[0]


def _write_row(buffer: RolloutBuffer, obs: np.ndarray, actions: np.ndarray,
               rewards: np.ndarray, starts: np.ndarray, values: torch.Tensor,
               log_probs: torch.Tensor) -> None:
    """``RolloutBuffer.add`` for arrays of its shapes, written in place."""
    row = buffer.pos
    buffer.observations[row], buffer.actions[row] = obs, actions
    buffer.rewards[row], buffer.episode_starts[row] = rewards, starts
    buffer.values[row], buffer.log_probs[row] = values.numpy().ravel(), log_probs.numpy()
    buffer.pos += 1
    buffer.full = buffer.pos == buffer.buffer_size
