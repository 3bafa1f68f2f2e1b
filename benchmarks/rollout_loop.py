"""What a rollout loop of our own would save on the walker (EnvPool): the ceiling of #32's item 1.

Times CompiledPPO's rollout (SB3's ``collect_rollouts`` with the compiled policy forward)
against ``lean_rollout`` below, interleaved, CPU time of the main thread and of the process,
medians of per-repeat ratios. ``lean_rollout`` is an upper bound, not a training path: it
makes the same policy calls, but on a step where no episode ends it steps EnvPool directly and
does the four VecEnv layers' work (EnvPool's adapter, VecMonitor, the training reward,
VecNormalize) with their own methods and arrays, minus their calls, info dicts and copies; it
writes the buffer's rows in place. A step where an episode ends goes through the layers as
usual. With a policy that walks (``--walking``: the committed start, episodes of about 1,600
steps) almost every step is such a step, so the bound is at its widest. ``--check`` first
collects three rollouts with each loop from the same seed and compares them: the buffers, the
normalisation statistics and the episodes logged (returns and lengths) must be the same, bit
for bit.

    python benchmarks/rollout_loop.py [--repeats 7] [--walking] [--check]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from fop_rl import config
from fop_rl.compiled import CompiledPPO
from fop_rl.envs import make_train_env
from fop_rl.evaluate import load_model, load_stats
from fop_rl.train import build_model

START = Path(__file__).resolve().parents[1] / "docs/results/starts/walker-momentum-seed-9"


class _Continue(BaseCallback):
    def _on_step(self) -> bool:
        return True


def lean_rollout(model: CompiledPPO, env, callback: BaseCallback, n_steps: int) -> None:
    norm, reward = env, env.venv  # VecNormalize, TrainingReward
    monitor, adapter = reward.venv, reward.venv.venv  # VecMonitor, EnvPoolVecEnv
    policy, buffer = model.policy, model.rollout_buffer
    forward = type(policy).forward
    low, high = model.action_space.low, model.action_space.high
    scale, n_envs = np.float32(reward.reward_scale), env.num_envs
    policy.set_training_mode(False)
    buffer.reset()
    callback.on_rollout_start()
    obs, starts = model._last_obs, model._last_episode_starts
    for _ in range(n_steps):
        with torch.no_grad():
            actions, values, log_probs = model._run("forward", forward, policy,
                                                    torch.from_numpy(obs))
        actions = actions.numpy()
        raw_obs, raw_rewards, terminated, truncated, fall = adapter._repeat(
            np.clip(actions, low, high))
        dones = terminated | truncated
        if dones.any():  # the layers take this step as in SB3's loop
            taken = (raw_obs, raw_rewards, terminated, truncated, fall)
            adapter._repeat = lambda _, taken=taken: taken  # the step taken, not another
            new_obs, rewards, dones, infos = env.step_wait()
            del adapter._repeat
        else:
            raw_rewards = raw_rewards.astype(np.float32)
            monitor.episode_returns += raw_rewards
            monitor.episode_lengths += 1
            rewards = raw_rewards * scale
            norm.old_obs, norm.old_reward = raw_obs, rewards
            norm.obs_rms.update(raw_obs)
            new_obs = norm._normalize_obs(raw_obs, norm.obs_rms).astype(np.float32)
            norm._update_reward(rewards)
            rewards = norm.normalize_reward(rewards)
            infos = [{} for _ in range(n_envs)]
        model.num_timesteps += n_envs
        callback.update_locals(locals())
        callback.on_step()
        if dones.any():
            model._update_info_buffer(infos, dones)
            for i in np.flatnonzero(dones):
                if infos[i].get("TimeLimit.truncated", False):
                    last = policy.obs_to_tensor(infos[i]["terminal_observation"])[0]
                    with torch.no_grad():
                        rewards[i] += model.gamma * policy.predict_values(last)[0]
        row = buffer.pos
        buffer.observations[row], buffer.actions[row] = obs, actions
        buffer.rewards[row], buffer.episode_starts[row] = rewards, starts
        buffer.values[row], buffer.log_probs[row] = values.numpy().ravel(), log_probs.numpy()
        buffer.pos += 1
        obs, starts = new_obs, dones
    buffer.full = True
    model._last_obs, model._last_episode_starts = obs, starts
    with torch.no_grad():
        last_values = policy.predict_values(torch.from_numpy(obs))
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    callback.on_rollout_end()


def build(walking: bool) -> tuple[CompiledPPO, object, BaseCallback]:
    """The packaged walker's model and training environments, seed 0, ready to collect."""
    cfg = config.load(None, None, [])
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
    model = build_model(cfg, env)
    if walking:
        model.policy.load_state_dict(load_model(START / "model.zip").policy.state_dict())
        stats = load_stats(START / "vecnormalize.pkl")
        env.obs_rms, env.ret_rms = stats.obs_rms, stats.ret_rms
    _, callback = model._setup_learn(10**9, _Continue())
    callback.on_training_start(locals(), globals())
    return model, env, callback


def check(walking: bool) -> None:
    """Three rollouts with each loop from the same seed: the same, bit for bit."""
    # one after the other: building a model seeds torch's global generator, which both sample
    sb3, sb3_env, sb3_callback = build(walking)
    for _ in range(3):
        sb3.collect_rollouts(sb3_env, sb3_callback, sb3.rollout_buffer, sb3.n_steps)
    lean, lean_env, lean_callback = build(walking)
    for _ in range(3):
        lean_rollout(lean, lean_env, lean_callback, lean.n_steps)
    for name in ("observations", "actions", "rewards", "episode_starts", "values", "log_probs",
                 "advantages", "returns"):
        assert np.array_equal(getattr(sb3.rollout_buffer, name),
                              getattr(lean.rollout_buffer, name)), name
    for name in ("obs_rms", "ret_rms"):
        for part in ("mean", "var", "count"):
            assert np.array_equal(getattr(getattr(sb3_env, name), part),
                                  getattr(getattr(lean_env, name), part)), (name, part)
    def episodes(model: CompiledPPO) -> list[tuple[float, int]]:  # not "t", the wall clock
        return [(info["r"], info["l"]) for info in model.ep_info_buffer]

    assert episodes(sb3) == episodes(lean)
    print(f"check: 3 rollouts, {len(sb3.ep_info_buffer)} episodes: the same, bit for bit")


def cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.thread_time(), usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--walking", action="store_true",
                        help="start from the walking policy in docs/results/starts/")
    parser.add_argument("--check", action="store_true",
                        help="first check that both loops collect the same rollouts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.check:
        check(args.walking)
    model, env, callback = build(args.walking)
    loops = {"SB3's loop": lambda: model.collect_rollouts(env, callback, model.rollout_buffer,
                                                          model.n_steps),
             "lean loop": lambda: lean_rollout(model, env, callback, model.n_steps)}
    for loop in loops.values():  # compiled, and episodes under way
        loop()
        loop()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    for repeat in range(args.repeats):
        for name in (list(loops) if repeat % 2 == 0 else list(loops)[::-1]):
            before = cpu()
            loops[name]()
            times[name].append(tuple(b - a for a, b in zip(before, cpu(), strict=True)))
    steps = model.n_steps * env.num_envs
    episodes = len(model.ep_info_buffer)
    print(f"per rollout of {steps} steps, {'walking' if args.walking else 'fresh'} policy "
          f"({episodes} episodes in SB3's info buffer), medians of {args.repeats}:")
    for name, samples in times.items():
        main_cpu, process = (statistics.median(s[i] for s in samples) for i in (0, 1))
        print(f"  {name:11s} main thread {main_cpu:.3f} s CPU, process {process:.3f} s CPU")
    for i, what in enumerate(("main thread", "process")):
        ratios = [a[i] / b[i] for a, b in zip(times["SB3's loop"], times["lean loop"],
                                               strict=True)]
        print(f"  SB3's / lean, {what}: {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
