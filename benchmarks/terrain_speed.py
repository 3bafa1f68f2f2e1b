"""The terrain walker's speed against gymnasium's BipedalWalker, in one process.

Each pair steps the same number of random actions (resets, and so terrain generation,
included: the walker falls often under random actions) in gymnasium's environment and in
fop_rl/BipedalWalkerTerrain-v0 on the same task: plain ground (``flat``) against
BipedalWalker-v3, and the ``hardcore`` preset against BipedalWalkerHardcore-v3. Repeats
alternate which goes first; the ratio is per repeat (reference time / terrain time, so > 1 is
faster), then the median. Time is the thread's CPU time, so waiting for a busy core does not
count. A parametric preset (``stumps-low``) is timed the same way against the plain walker,
for what a custom terrain costs.

    python benchmarks/terrain_speed.py [--repeats 9] [--steps 5000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import fop_rl  # noqa: F401  (registers the terrain walker)
from fop_rl.terrain import ENV_ID, MAX_EPISODE_STEPS

PAIRS = {  # name: (reference id, terrain preset)
    "flat vs BipedalWalker-v3": ("BipedalWalker-v3", "flat"),
    "hardcore vs BipedalWalkerHardcore-v3": ("BipedalWalkerHardcore-v3", "hardcore"),
    "stumps-low vs BipedalWalker-v3": ("BipedalWalker-v3", "stumps-low"),
}


def seconds(env: gym.Env, steps: int, seed: int) -> float:
    """CPU seconds for ``steps`` random actions, resetting at each episode's end."""
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 4)).astype(np.float32)
    env.reset(seed=seed)
    start = time.thread_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    for name, (reference_id, preset) in PAIRS.items():
        reference = gym.make(reference_id, max_episode_steps=MAX_EPISODE_STEPS)
        terrain = gym.make(ENV_ID, terrain=preset)
        ratios, times = [], {"reference": [], "terrain": []}
        for repeat in range(args.repeats):
            order = [("reference", reference), ("terrain", terrain)]
            if repeat % 2:
                order.reverse()
            took = {key: seconds(env, args.steps, repeat) for key, env in order}
            ratios.append(took["reference"] / took["terrain"])
            for key, value in took.items():
                times[key].append(value)
        per_step = {k: 1e6 * statistics.median(v) / args.steps for k, v in times.items()}
        print(f"{name}: terrain / reference speed {statistics.median(ratios):.3f}x (median of "
              f"{args.repeats}, min {min(ratios):.3f}, max {max(ratios):.3f}); "
              f"{per_step['reference']:.0f} us vs {per_step['terrain']:.0f} us per step")


if __name__ == "__main__":
    main()
