"""Compiled against eager PPO updates on one stream of rollouts: how far apart the parameters are
after each update. An eager model (SB3's PPO) collects and trains; a compiled copy trains on the
same rollouts, minibatch order and optimizer state, so only the update differs. For FOP also
how far apart P's largest eigenvalues are, layer by layer.

    python docs/results/speed/gradient-learning/diverge.py fop-momentum 6
"""

from __future__ import annotations

import copy
import sys

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model


class KeepRollout(BaseCallback):
    """The rollout as the eager model trains on it, and the minibatches' seed."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.buffer = copy.deepcopy(self.model.rollout_buffer)
        self.progress = self.model._current_progress_remaining
        np.random.seed(self.n_calls)


def main(optimizer: str, updates: int) -> None:
    settings = config.load(None, "BipedalWalker-v3", [f"training.optimizer={optimizer}"])
    env = make_train_env(settings["env"], settings["ppo"]["gamma"], 0, None)
    eager = build_model({**settings, "ppo": {**settings["ppo"], "compile": False}}, env)
    compiled = build_model({**settings, "ppo": {**settings["ppo"], "compile": True}}, env)
    compiled.policy.load_state_dict(eager.policy.state_dict())
    compiled.set_logger(configure(None, []))
    # the optimizer as the eager one starts (a deep copy: no shared momentum buffers)
    compiled.policy.optimizer.load_state_dict(copy.deepcopy(eager.policy.optimizer.state_dict()))
    keep = KeepRollout()
    steps = settings["ppo"]["n_steps"] * settings["env"]["n_envs"]
    for k in range(updates):
        eager.learn(steps, callback=keep, reset_num_timesteps=k == 0)
        compiled.rollout_buffer = keep.buffer
        compiled._current_progress_remaining = keep.progress
        np.random.seed(keep.n_calls)
        compiled.train()
        gaps = {name: ((p - q).norm() / q.norm()).item() for (name, p), q in
                zip(compiled.policy.named_parameters(), eager.policy.parameters(), strict=True)}
        worst = max(gaps, key=gaps.get)
        print(f"update {k + 1}: relative gap max {gaps[worst]:.2e} ({worst}), "
              f"median {np.median(list(gaps.values())):.2e}{eigenvalue_gap(eager, compiled)}",
              flush=True)


def eigenvalue_gap(eager, compiled) -> str:
    """The largest relative gap between the two models' P's largest eigenvalues, and that
    eigenvalue (eager), where the optimizer is FOP."""
    if not hasattr(eager.policy.optimizer, "diagnostics"):
        return ""
    mine, theirs = (dict((d.name, d.eigenvalues[0]) for d in m.policy.optimizer.diagnostics(
        m.policy.named_parameters())) for m in (eager, compiled))
    gaps = {name: abs(theirs[name] - value) / abs(value) for name, value in mine.items()}
    worst = max(gaps, key=gaps.get)
    return f"; P's largest eigenvalue: gap max {gaps[worst]:.2e} ({worst}: {mine[worst]:.3f})"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
