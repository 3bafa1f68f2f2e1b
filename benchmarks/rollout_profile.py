"""Where a PPO rollout spends its time, on the walker (EnvPool) or the terrain walker (gymnasium).

Builds the packaged model for the environment, collects one rollout to warm up (compiling), then
profiles ``--rollouts`` more with cProfile and groups the time by who does the work: the
simulator, gymnasium's walker code around it, fop_rl's terrain generator, the policy, SB3's
vectorised environments and VecNormalize. cProfile adds a cost to every Python call, so
Python-heavy parts read a little larger than they are; the shares, not the seconds, are the
point.

``--split``: no profiler; the main thread's CPU time per rollout measured around the policy's
call, the VecEnv's step (every wrapper, down to EnvPool's Python side; EnvPool steps in its own
thread) and the buffer's writes, with the process's CPU time (EnvPool's thread included) beside
it: what each part costs inside the loop, where it runs with caches that the other parts used.

    python benchmarks/rollout_profile.py [--terrain hardcore-25] [--rollouts 2] [--split]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable

import torch
from stable_baselines3.common.callbacks import BaseCallback

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.terrain import ENV_ID
from fop_rl.train import build_model

# part -> (file fragment, function) whose time it is: "own" for the function's own time
# (tottime), else its cumulative time
PARTS = {
    "Box2D: physics step": ("~", "<built-in method Box2D._Box2D.b2World_Step>", "own"),
    "Box2D: lidar ray casts (with gymnasium's callback)": ("bipedal_walker.py", "step", "rays"),
    "gymnasium's walker step, in all": ("bipedal_walker.py", "step", "cum"),
    "fop_rl's terrain generator (resets)": ("terrain.py", "_generate_terrain", "cum"),
    "EnvPool: step": ("envpool.py", "step", "cum"),
    "EnvPool adapter's own (fop_rl.envpool_env)": ("envpool_env.py", "step_wait", "own"),
    "policy forward (compiled)": ("policies.py", "forward", "cum"),
    "SB3 DummyVecEnv: copies of infos": ("dummy_vec_env.py", "step_wait", "deepcopy"),
    "VecNormalize (its own work)": ("vec_normalize.py", "step_wait", "own-tree"),
    "fop_rl's training reward (a VecEnv wrapper)": ("wrappers.py", "step_wait", "own-tree-w"),
    "rollout buffer writes": ("buffers.py", "add", "cum"),
}


class _Continue(BaseCallback):
    def _on_step(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terrain", help="a terrain walker preset (default: the plain walker "
                        "on EnvPool)")
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--split", action="store_true",
                        help="CPU time per part inside the loop, no profiler")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = [] if args.terrain is None else [f"env.terrain={args.terrain}"]
    cfg = config.load(None, None if args.terrain is None else ENV_ID, overrides)
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
    model = build_model(cfg, env)
    _, callback = model._setup_learn(10**9, _Continue())
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(env, callback, model.rollout_buffer, model.n_steps)
    if args.split:
        split(model, env, callback, args.rollouts)
        return
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.rollouts):
        model.collect_rollouts(env, callback, model.rollout_buffer, model.n_steps)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(own for _, _, own, _, _ in stats.values())

    def cum(fragment: str, name: str) -> float:
        return sum(c for (file, _, fn), (_, _, _, c, _) in stats.items()
                   if fragment in file and fn == name)

    def own(fragment: str, name: str) -> float:
        return sum(t for (file, _, fn), (_, _, t, _, _) in stats.items()
                   if fragment in file and fn == name)

    def callees(fragment: str, name: str, prefix: str) -> float:
        """The cumulative time of calls made from ``fragment:name`` to functions whose name
        starts with ``prefix`` (as pstats records each caller)."""
        found = 0.0
        for (_, _, fn), (_, _, _, _, callers) in stats.items():
            if fn.startswith(prefix) or prefix in fn:
                for (file, _, caller), timing in callers.items():
                    if fragment in file and caller == name:
                        found += timing[3]
        return found

    env_name = args.terrain or cfg["env"]["id"]
    print(f"{env_name} ({cfg['env']['backend']}): {args.rollouts} rollouts of "
          f"{cfg['env']['n_envs']} x {cfg['ppo']['n_steps']} steps, {total:.2f} s profiled")
    for part, (fragment, name, how) in PARTS.items():
        if how == "own":
            seconds = own(fragment, name)
        elif how == "rays":
            seconds = callees(fragment, name, "RayCast")
        elif how == "deepcopy":
            seconds = callees(fragment, name, "deepcopy")
        elif how == "own-tree":  # less the environments under it (fop_rl.wrappers's)
            seconds = cum(fragment, name) - cum("wrappers.py", "step_wait")
        elif how == "own-tree-w":  # less the environments under it
            seconds = cum(fragment, name) - cum("vec_monitor.py", "step_wait") - cum(
                "dummy_vec_env.py", "step_wait")
        else:
            seconds = cum(fragment, name)
        print(f"  {part:52s} {seconds:6.2f} s  {100 * seconds / total:5.1f}%")


def split(model, env, callback, rollouts: int) -> None:
    """Main-thread CPU seconds per rollout in the policy, the VecEnv and the buffer."""
    parts = {"policy call": 0.0, "VecEnv step (main thread)": 0.0, "buffer writes": 0.0}

    def timing(part: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[part] += time.thread_time() - start
        return timed

    model._run = timing("policy call", model._run)  # CompiledPPO's compiled forward
    env.step = timing("VecEnv step (main thread)", env.step)
    model.rollout_buffer.add = timing("buffer writes", model.rollout_buffer.add)
    main, process = time.thread_time(), time.process_time()
    for _ in range(rollouts):
        model.collect_rollouts(env, callback, model.rollout_buffer, model.n_steps)
    main, process = time.thread_time() - main, time.process_time() - process
    print(f"per rollout of {model.n_steps * env.num_envs} steps ({rollouts} rollouts): "
          f"process CPU {process / rollouts:.3f} s, main thread {main / rollouts:.3f} s")
    for part, seconds in parts.items():
        print(f"  {part:28s} {seconds / rollouts:.3f} s")
    print(f"  {'the rest of the loop':28s} {(main - sum(parts.values())) / rollouts:.3f} s")


if __name__ == "__main__":
    main()
