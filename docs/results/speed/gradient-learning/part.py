"""Compiled against eager PPO, each collecting its own rollouts from the same seed: where the two
runs part. SB3's PPO (eager) and CompiledPPO (the compiled gradient, our rollout loop, the NumPy
forward) start from the same weights, environments and noise generator, one after the other
(they share torch's global generator); per rollout this prints how far apart their observations
and actions are (largest absolute difference, and the first step where an action differs by
more than 1e-3) and, after each update, the parameters' largest relative gap.

    python docs/results/speed/gradient-learning/part.py fop-momentum 10
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model


class Keep(BaseCallback):
    """Each rollout's observations and actions, and the parameters after each update."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts: list[tuple[np.ndarray, np.ndarray]] = []
        self.parameters: list[list[torch.Tensor]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.rollouts:  # the update before this rollout has been made
            self.parameters.append([p.detach().clone() for p in self.model.policy.parameters()])
        buffer = self.model.rollout_buffer
        self.rollouts.append((buffer.observations.copy(), buffer.actions.copy()))


def follow(settings: dict, compile_: bool, updates: int) -> Keep:
    settings = {**settings, "ppo": {**settings["ppo"], "compile": compile_}}
    env = make_train_env(settings["env"], settings["ppo"]["gamma"], 0, None)
    model = build_model(settings, env)  # seeds torch, NumPy and the environments
    keep = Keep()
    steps = settings["ppo"]["n_steps"] * settings["env"]["n_envs"]
    model.learn(steps * (updates + 1), callback=keep)
    return keep


def main(optimizer: str, updates: int) -> None:
    settings = config.load(None, "BipedalWalker-v3", [f"training.optimizer={optimizer}"])
    eager, compiled = (follow(settings, c, updates) for c in (False, True))
    for k, ((obs, act), (obs2, act2)) in enumerate(zip(eager.rollouts, compiled.rollouts,
                                                        strict=True)):
        apart = np.abs(act - act2).max(axis=(1, 2)) > 1e-3
        first = f"step {int(np.argmax(apart))} of {len(apart)}" if apart.any() else "none"
        line = (f"rollout {k + 1}: observations apart by {np.abs(obs - obs2).max():.2e}, "
                f"actions by {np.abs(act - act2).max():.2e} (first > 1e-3: {first})")
        if k < len(eager.parameters):
            gaps = [((p - q).norm() / q.norm()).item()
                    for p, q in zip(compiled.parameters[k], eager.parameters[k], strict=True)]
            line += f"; after update {k + 1}: parameters' largest relative gap {max(gaps):.2e}"
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
