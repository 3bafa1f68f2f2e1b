"""One rollout step's policy call: the NumPy forward (fop_rl.numpy_policy) against CompiledPPO's
compiled forward, on the packaged walker's batch (8 environments) and the hard-terrain recipe's
(16), interleaved, thread CPU time per call, medians of repeats.

    python benchmarks/policy_forward.py [--repeats 5] [--calls 500]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.numpy_policy import NumpyForward
from fop_rl.train import build_model

ROOT = Path(__file__).resolve().parent.parent
SETUPS = {"walker": (None, "BipedalWalker-v3"),
          "recipe": (ROOT / "configs" / "bipedal_walker_hardcore_recipe.yaml", None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, (path, env_id) in SETUPS.items():
        settings = config.load(path, env_id, ["training.optimizer=adam", "ppo.compile=true"])
        env = make_train_env(settings["env"], settings["ppo"]["gamma"], 0, None)
        model = build_model(settings, env)
        obs = torch.as_tensor(np.random.default_rng(0).normal(
            size=(env.num_envs, *env.observation_space.shape)).astype(np.float32))
        forwards = {"NumPy": NumpyForward.for_policy(model.policy),
                    "compiled": model._compiled_forward}
        for forward in forwards.values():  # compiled, and warm
            for _ in range(50):
                forward(obs)
        times: dict[str, list[float]] = {k: [] for k in forwards}
        for repeat in range(args.repeats):
            for k in (list(forwards) if repeat % 2 == 0 else list(forwards)[::-1]):
                start = time.thread_time()
                for _ in range(args.calls):
                    forwards[k](obs)
                times[k].append((time.thread_time() - start) / args.calls * 1e6)
        medians = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name} ({env.num_envs} x {obs.shape[1]}): " + ", ".join(
            f"{k} {v:.1f} us" for k, v in medians.items())
            + f"; compiled / NumPy {medians['compiled'] / medians['NumPy']:.2f}x")


if __name__ == "__main__":
    main()
