"""End-to-end PPO throughput: env steps/s with momentum and with fop-momentum, in one process.

The same packaged config trains for the same number of steps with each optimizer, alternating,
several times; ratios are per repeat, then medians (the machine is shared and noisy). With
``--vec-env both`` it also compares DummyVecEnv and SubprocVecEnv for momentum.

    python benchmarks/throughput.py [--steps 20480] [--repeats 3] [--vec-env dummy|both]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model


def steps_per_second(cfg: dict, steps: int) -> float:
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], cfg["training"]["seed"], None)
    model = build_model(cfg, env)
    start = time.perf_counter()
    model.learn(steps)
    elapsed = time.perf_counter() - start
    env.close()
    return model.num_timesteps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="BipedalWalker-v3")
    parser.add_argument("--steps", type=int, default=20480)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vec-env", choices=("dummy", "both"), default="dummy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {"momentum": ("momentum", "dummy"), "fop-momentum": ("fop-momentum", "dummy")}
    if args.vec_env == "both":
        variants["momentum (subproc)"] = ("momentum", "subproc")
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (optimizer, vec_env) in variants.items():
            cfg = config.load(env_id=args.env, overrides=[f"training.optimizer={optimizer}",
                                                          f"env.vec_env={vec_env}"])
            rates[name].append(steps_per_second(cfg, args.steps))
            print(f"  {name}: {rates[name][-1]:.0f} steps/s", flush=True)
    cfg = config.load(env_id=args.env)
    print(f"\n{args.env}, {cfg['env']['n_envs']} envs x {cfg['ppo']['n_steps']} steps, "
          f"batch {cfg['ppo']['batch_size']}, {cfg['ppo']['n_epochs']} epochs; {args.steps} "
          f"steps x {args.repeats} repeats, torch {torch.__version__}, 1 thread")
    for name, rs in rates.items():
        print(f"  {name:20s} median {statistics.median(rs):7.0f} env steps/s")
    for name in rates:
        if name != "momentum":
            ratios = [a / b for a, b in zip(rates[name], rates["momentum"], strict=True)]
            print(f"  {name} / momentum: median {statistics.median(ratios):.3f}x "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
