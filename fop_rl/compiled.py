"""PPO whose minibatch gradient and rollout forward are compiled: SB3's algorithm, fewer Python
calls per minibatch and per step.

:class:`CompiledPPO` is stable-baselines3's PPO (same policy, optimizer, ``policy_kwargs``,
saved models and logged statistics) whose update computes each minibatch's gradient as one
compiled function: the policy's evaluation of the actions, the probability ratio, the clipped
surrogate, the value loss and the entropy bonus,

    loss = -mean(min(A r, A clip(r, 1 - eps, 1 + eps))) + c_ent (-mean(H)) + c_vf mean((R - V)^2)

with r = exp(log pi(a|s) - log pi_old(a|s)) and A the advantages normalised per minibatch,
exactly as ``PPO.train``; its gradient with respect to the policy's parameters; and that
gradient clipped to ``max_grad_norm`` as ``clip_grad_norm_`` clips it. torch.func
differentiates the loss, the forward and backward are traced into one graph of torch
operations (``make_fx``) and compiled, so that a minibatch costs one call instead of autograd's
walk through its graph. The gradients then go to the optimizer as SB3 gives them (``p.grad``),
and its ``step`` runs as it is; the per-minibatch statistics (``train/*``) are SB3's.

Rollouts run the policy's forward (its actions, values and their log-probabilities for the
environments' observations) in NumPy where :mod:`fop_rl.numpy_policy` covers the policy (the
packaged MLPs: a tenth of a torch call's cost), else compiled: SB3's ``collect_rollouts``
calls ``policy(obs)``, whose ``forward`` is that one while it runs. Either draws the noise from
torch's generator as SB3 does (inductor's ``fallback_random``), so a seed gives SB3's actions,
to float rounding. On the packaged
walker's environments (EnvPool) the rollout is :mod:`fop_rl.rollout`'s loop, SB3's bit for
bit with fewer calls per step.

Compilation happens at the first call of each function in a process (the gradient once per
minibatch size; seconds on CPU with a warm cache, tens of seconds without, and a C++ compiler
at run time). Where it is unavailable or fails, training goes on with the same functions
uncompiled, after a one-line note. Features SB3's PPO has and this loss leaves out (a clipped
value function, early stopping on ``target_kl``, discrete actions) fall back to SB3's own
``train``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv
from torch.fx.experimental.proxy_tensor import make_fx

from fop_rl import rollout
from fop_rl.numpy_policy import NumpyForward
from fop_rl.text import first_line


def minibatch_loss(policy: torch.nn.Module, observations: torch.Tensor, actions: torch.Tensor,
                   old_log_prob: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
                   clip_range: torch.Tensor | float, ent_coef: float, vf_coef: float,
                   normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's loss on one minibatch, and what SB3 logs of it in one tensor (read with one call):
    policy loss, value loss, entropy loss, clip fraction, approximate KL."""
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
        stats = torch.stack([policy_loss, value_loss, entropy_loss, clip_fraction, approx_kl])
    return loss, stats


class _Loss(torch.nn.Module):
    """:func:`minibatch_loss` of ``policy`` as a module's forward, for ``functional_call``."""

    def __init__(self, policy: torch.nn.Module, ent_coef: float, vf_coef: float,
                 normalize: bool):
        super().__init__()
        self.policy, self.ent_coef, self.vf_coef = policy, ent_coef, vf_coef
        self.normalize = normalize

    def forward(self, *batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *minibatch, clip_range = batch
        return minibatch_loss(self.policy, *minibatch, clip_range, self.ent_coef, self.vf_coef,
                              self.normalize)


def minibatch_gradients(loss: _Loss, max_grad_norm: float) -> Callable:
    """``(parameter values, *minibatch, clip_range) -> (gradients, loss, statistics)``: the
    gradient of ``loss`` with respect to its policy's parameters (in ``named_parameters``
    order), scaled as ``clip_grad_norm_(max_grad_norm)`` scales it, as a pure function."""
    names = [f"policy.{name}" for name, _ in loss.policy.named_parameters()]

    def gradients(values: tuple[torch.Tensor, ...], *batch: torch.Tensor
                  ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        def objective(values: tuple[torch.Tensor, ...]):
            parameters = dict(zip(names, values, strict=True))
            value, stats = torch.func.functional_call(loss, parameters, batch)
            return value, (value, stats)

        grads, (value, stats) = torch.func.grad(objective, has_aux=True)(values)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0)
        return [g * scale for g in grads], value, stats

    return gradients


class CompiledPPO(PPO):
    """SB3's PPO with :func:`minibatch_gradients` and the rollouts' policy forward compiled
    (eager after a failure to compile, with a note)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.compiled = True  # until compiling fails in this process
        self.numpy_rollouts = True  # the rollout forward in NumPy where it covers the policy
        self._functions: dict[str, Callable] = {}
        self._traced: dict[int, Callable] = {}  # minibatch size -> its gradient as one graph
        super().__init__(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        # whether to compile is each process's own (a loaded model compiles where it can)
        return [*super()._excluded_save_params(), "compiled", "numpy_rollouts", "_functions",
                "_traced"]

    def _run(self, name: str, fn: Callable, *args: Any) -> Any:
        """``fn(*args)``, compiled at its first call (one compiled ``fn`` per ``name``); if
        compiling fails (no C++ compiler, an op the compiler does not take), a one-line note,
        and this model runs every function eager from then on. Errors of ``fn`` itself are
        raised as they are."""
        if self.compiled:
            slow = None
            if name not in self._functions:
                # cpp_wrapper: the compiled code's calls made from C++, not Python (at these
                # sizes, calls cost more than arithmetic)
                self._functions[name] = torch.compile(
                    fn, dynamic=False, options={"fallback_random": True, "cpp_wrapper": True})
                # a few seconds with torch's cache warm; say why a first run waits longer
                slow = threading.Timer(10.0, print, [f"note: compiling PPO's {name} (the first "
                                                     "time on this machine: tens of seconds; "
                                                     "cached after)"],
                                       {"file": sys.stderr, "flush": True})
                slow.start()
            try:
                return self._functions[name](*args)
            except torch._dynamo.exc.TorchDynamoException as e:  # torch.compile imported it
                print(f"note: PPO could not be compiled ({type(e).__name__}: {first_line(e)}); "
                      "training goes on uncompiled", file=sys.stderr, flush=True)
                self.compiled = False
            finally:
                if slow is not None:
                    slow.cancel()
        return fn(*args)

    def _compiled_forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The policy's forward (actions, values, log-probabilities), compiled."""
        return self._run("forward", type(self.policy).forward, self.policy, obs)

    def rollout_forward(self) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
        """This rollout's policy forward: in NumPy on the policy's weights as they are now
        (after the last update), where it covers the policy; else compiled."""
        numpy_forward = NumpyForward.for_policy(self.policy) if self.numpy_rollouts else None
        return numpy_forward or self._compiled_forward

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback,
                         rollout_buffer: RolloutBuffer, n_rollout_steps: int) -> bool:
        if rollout.fits(self, env):  # the packaged walker on EnvPool
            return rollout.collect(self, env, callback, rollout_buffer, n_rollout_steps,
                                   self.rollout_forward())
        return self.sb3_collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)

    def sb3_collect_rollouts(self, env: VecEnv, callback: BaseCallback,
                             rollout_buffer: RolloutBuffer, n_rollout_steps: int) -> bool:
        """SB3's ``collect_rollouts`` with our rollout forward: the rollout on any other
        environment, and the reference fop_rl.rollout is measured against."""
        # SB3's rollouts call policy(obs), which calls its forward: ours while they run
        self.policy.forward = self.rollout_forward()
        try:
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        finally:
            del self.policy.forward

    def _step(self, batch: list[torch.Tensor], clip_range: torch.Tensor,
              params: list[torch.Tensor], values: tuple[torch.Tensor, ...]
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One minibatch (observations, actions, old log-probabilities, advantages, returns):
        the loss's gradient (clipped) as :func:`minibatch_gradients` computes it, then the
        optimizer's step, as SB3's PPO.train makes them; returns the loss and its statistics.
        ``values`` are the parameters' values (detached views of ``params``)."""
        size = len(batch[0])
        if size not in self._traced:
            self._traced[size] = self._trace_gradients(values, batch, clip_range)
        grads, loss_value, stats = self._run(f"gradients of {size}", self._traced[size],
                                             values, *batch, clip_range)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        self.policy.optimizer.step()
        return loss_value, stats

    def _trace_gradients(self, values: tuple[torch.Tensor, ...], batch: list[torch.Tensor],
                         clip_range: torch.Tensor) -> Callable:
        """:func:`minibatch_gradients` for minibatches of ``batch``'s size, traced into one
        graph of torch operations."""
        loss = _Loss(self.policy, float(self.ent_coef), float(self.vf_coef),
                     self.normalize_advantage and len(batch[0]) > 1)
        # a traced graph holds no checks that read tensors' values: torch.distributions'
        # argument checks are left out of it (train checks the parameters once instead)
        validate = torch.distributions.Distribution._validate_args
        torch.distributions.Distribution.set_default_validate_args(False)
        try:
            return make_fx(minibatch_gradients(loss, self.max_grad_norm))(values, *batch,
                                                                           clip_range)
        finally:
            torch.distributions.Distribution.set_default_validate_args(validate)

    def _rollout_tensors(self) -> list[torch.Tensor]:
        """The rollout as SB3's buffer hands it out, as tensors: observations, actions, old
        log-probabilities, advantages, returns. The buffer is left flattened (environment-major)
        as SB3's ``get`` leaves it."""
        buffer = self.rollout_buffer
        if not buffer.generator_ready:
            for name in ("observations", "actions", "values", "log_probs", "advantages",
                         "returns"):
                setattr(buffer, name, buffer.swap_and_flatten(getattr(buffer, name)))
            buffer.generator_ready = True
        return [torch.as_tensor(buffer.observations),
                torch.as_tensor(buffer.actions.astype(np.float32, copy=False)),
                *(torch.as_tensor(getattr(buffer, name).flatten())
                  for name in ("log_probs", "advantages", "returns"))]

    def train(self) -> None:
        if (self.clip_range_vf is not None or self.target_kl is not None
                or not isinstance(self.action_space, spaces.Box)):
            return super().train()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = float(self.clip_range(self._current_progress_remaining))
        # a tensor: a float would be compiled in as a constant, and recompiled when scheduled
        clip = torch.tensor(clip_range)
        params = list(self.policy.parameters())  # not walked again for every minibatch
        # the functions' inputs: the same storage, which the optimizer updates in place
        values = tuple(p.detach() for p in params)
        rollout = self._rollout_tensors()
        n = len(rollout[0])
        starts = range(0, n, self.batch_size)
        # each minibatch's statistics, read once at the end of the update
        stats = torch.empty(self.n_epochs, len(starts), 5)
        for epoch in range(self.n_epochs):
            # SB3's minibatches: the same permutation from numpy's generator, gathered once
            # per epoch, then sliced
            order = torch.from_numpy(np.random.permutation(n))
            shuffled = [t[order] for t in rollout]
            for i, start in enumerate(starts):
                loss, stats[epoch, i] = self._step(
                    [t[start:start + self.batch_size] for t in shuffled], clip, params, values)
            self._n_updates += 1
        if not torch.stack([torch.isfinite(p).all() for p in params]).all():
            # SB3's PPO stops at its distributions' argument checks, which the compiled graphs
            # lack (and which dynamo turns off in a process where it has run)
            raise ValueError("PPO's update left non-finite values in the policy's parameters "
                             f"(learning rate {self.policy.optimizer.param_groups[0]['lr']:g})")
        pg, value, entropy, clip_fraction, _ = stats.mean(dim=(0, 1)).tolist()
        buffer = self.rollout_buffer
        self.logger.record("train/entropy_loss", entropy)
        self.logger.record("train/policy_gradient_loss", pg)
        self.logger.record("train/value_loss", value)
        # SB3 logs the last epoch's approximate KL
        self.logger.record("train/approx_kl", stats[-1, :, 4].mean().item())
        self.logger.record("train/clip_fraction", clip_fraction)
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance",
                           explained_variance(buffer.values.flatten(), buffer.returns.flatten()))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
