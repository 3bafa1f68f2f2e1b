"""Where PPO's update (``PPO.train()``) spends its time on the walker policy, per optimizer.

Builds the packaged walker model, collects one rollout, then profiles ``--repeats`` updates on
it with cProfile and groups the time by what SB3's loop calls. cProfile adds a cost to every
Python call, so Python-heavy parts read a little larger than they are; the shares, not the
seconds, are the point.

    python benchmarks/update_profile.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model

# part of the update -> (file fragment, function) whose cumulative time it is
PARTS = {
    "forward: policy and value on the minibatch": ("policies.py", "evaluate_actions"),
    "backward: autograd": ("_tensor.py", "backward"),
    "optimizer step": ("optimizer.py", "wrapper"),
    "gradient clipping": ("clip_grad.py", "clip_grad_norm_"),
    "minibatch sampling": ("buffers.py", "get"),
    "zero_grad": ("optimizer.py", "zero_grad"),
}


def cumulative(stats: pstats.Stats, fragment: str, function: str) -> float:
    return sum(row[3] for (path, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
               if name == function and path.endswith(fragment))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for optimizer in ("momentum", "fop-momentum"):
        cfg = config.load(overrides=[f"training.optimizer={optimizer}"])
        env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
        model = build_model(cfg, env)
        model.learn(cfg["env"]["n_envs"] * cfg["ppo"]["n_steps"])
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeats):
            model.train()
        profiler.disable()
        env.close()
        stats = pstats.Stats(profiler)
        total = cumulative(stats, "ppo.py", "train")
        print(f"{optimizer}: {total / args.repeats:.2f} s per update (profiled), "
              f"{cfg['ppo']['n_epochs']} epochs x "
              f"{cfg['env']['n_envs'] * cfg['ppo']['n_steps'] // cfg['ppo']['batch_size']} "
              "minibatches")
        accounted = 0.0
        for part, (fragment, function) in PARTS.items():
            seconds = cumulative(stats, fragment, function)
            accounted += seconds
            print(f"  {part:45s} {100 * seconds / total:5.1f}%")
        print(f"  {'the rest: losses, ratios, logging, SB3 loop':45s} "
              f"{100 * (total - accounted) / total:5.1f}%")


if __name__ == "__main__":
    main()
