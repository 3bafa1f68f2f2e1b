"""PPO whose minibatch loss is compiled: SB3's algorithm, fewer Python calls per minibatch.

:class:`CompiledPPO` is stable-baselines3's PPO (same policy, optimizer, ``policy_kwargs``,
saved models and logged statistics) whose update runs the minibatch loss as one function under
``torch.compile``: the policy's evaluation of the actions, the probability ratio, the clipped
surrogate, the value loss and the entropy bonus,

    loss = -mean(min(A r, A clip(r, 1 - eps, 1 + eps))) + c_ent (-mean(H)) + c_vf mean((R - V)^2)

with r = exp(log pi(a|s) - log pi_old(a|s)) and A the advantages normalised per minibatch,
exactly as ``PPO.train``. Its forward and backward each run as a few fused kernels. The rest
of the update is SB3's order of operations: zero_grad, backward, gradient clipping, the
optimizer's step, and the same per-minibatch statistics (``train/*``).

Compilation happens at the first minibatch of a process (tens of seconds on CPU, and a C++
compiler at run time). Where it is unavailable or fails, training goes on with the same
function uncompiled, after a one-line note. Features SB3's PPO has and this loss leaves out
(a clipped value function, early stopping on ``target_kl``, discrete actions) fall back to
SB3's own ``train``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import explained_variance

from fop_rl.config import first_line


def minibatch_loss(policy: torch.nn.Module, observations: torch.Tensor, actions: torch.Tensor,
                   old_log_prob: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
                   clip_range: torch.Tensor | float, ent_coef: float, vf_coef: float,
                   normalize: bool) -> tuple[torch.Tensor, ...]:
    """PPO's loss on one minibatch and what SB3 logs of it: (loss, policy loss, value loss,
    entropy loss, clip fraction, approximate KL)."""
    values, log_prob, entropy = policy.evaluate_actions(observations, actions)
    if normalize:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    policy_loss = -torch.min(advantages * ratio,
                             advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                             ).mean()
    value_loss = torch.nn.functional.mse_loss(returns, values.flatten())
    entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    with torch.no_grad():
        clip_fraction = torch.mean((torch.abs(ratio - 1) > clip_range).float())
        approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio)
    return loss, policy_loss, value_loss, entropy_loss, clip_fraction, approx_kl


class CompiledPPO(PPO):
    """SB3's PPO with :func:`minibatch_loss` compiled (``compile_loss=False``: eager)."""

    def __init__(self, *args: Any, compile_loss: bool = True, **kwargs: Any):
        self.compile_loss = compile_loss
        self._loss = None
        super().__init__(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_loss"]

    def _step(self, data: Any, clip_range: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One minibatch: the loss, its gradient (clipped) and the optimizer's step, as SB3's
        PPO.train makes them; returns the loss and its statistics."""
        if self._loss is None:  # a new or loaded model: compile at its first minibatch
            self._loss = (torch.compile(minibatch_loss, dynamic=False)
                          if getattr(self, "compile_loss", True) else minibatch_loss)
            try:
                return self._step(data, clip_range)
            except Exception as e:  # no C++ compiler, an op the compiler does not take
                if self._loss is minibatch_loss:
                    raise
                print(f"note: the PPO loss could not be compiled ({type(e).__name__}: "
                      f"{first_line(e)}); training goes on uncompiled", file=sys.stderr, flush=True)
                self._loss = minibatch_loss
        out = self._loss(self.policy, data.observations, data.actions, data.old_log_prob,
                         data.advantages, data.returns, clip_range, float(self.ent_coef),
                         float(self.vf_coef),
                         self.normalize_advantage and len(data.advantages) > 1)
        self.policy.optimizer.zero_grad()
        out[0].backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        return out

    def train(self) -> None:
        if (self.clip_range_vf is not None or self.target_kl is not None
                or not isinstance(self.action_space, spaces.Box)):
            return super().train()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = float(self.clip_range(self._current_progress_remaining))
        # a tensor: a float would be compiled in as a constant, and recompiled when scheduled
        clip = torch.tensor(clip_range)
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "clip", "kl")}
        for _ in range(self.n_epochs):
            logs["kl"] = []  # SB3 logs the last epoch's approximate KL
            for data in self.rollout_buffer.get(self.batch_size):
                loss, *stats = self._step(data, clip)
                for key, x in zip(logs, stats, strict=True):
                    logs[key].append(x.item())
            self._n_updates += 1
        buffer = self.rollout_buffer
        self.logger.record("train/entropy_loss", np.mean(logs["entropy"]))
        self.logger.record("train/policy_gradient_loss", np.mean(logs["pg"]))
        self.logger.record("train/value_loss", np.mean(logs["value"]))
        self.logger.record("train/approx_kl", np.mean(logs["kl"]))
        self.logger.record("train/clip_fraction", np.mean(logs["clip"]))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance",
                           explained_variance(buffer.values.flatten(), buffer.returns.flatten()))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
