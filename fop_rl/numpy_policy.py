"""The rollout's policy forward in NumPy: SB3's MlpPolicy function, without torch's per-call cost.

A rollout calls the policy once per step on a small batch (one row per environment). At these
sizes torch's dispatch, not arithmetic, is the cost: about 210 us a call compiled, against
about 22 us for the same MLP in NumPy. :class:`NumpyForward` computes what
``ActorCriticPolicy.forward`` computes for the packaged architectures, for one observation
batch ``x``:

    h_pi = act(... act(x W_1^T + b_1) ...)      (mlp_extractor.policy_net)
    h_vf = act(... act(x V_1^T + c_1) ...)      (mlp_extractor.value_net)
    mean = h_pi A^T + a                         (action_net)
    value = h_vf C^T + c                        (value_net)
    action = mean + exp(log_std) * eps,  eps ~ N(0, I) from torch's generator
    log pi(action) = sum_j (-eps_j^2 / 2 - log_std_j - log(2 pi) / 2)

It reads the policy's own weights: NumPy views of the parameters' storage, which every
optimizer step updates in place, made again at each rollout (:meth:`for_policy`). The noise is
drawn with ``torch.randn`` from torch's global generator, as SB3's ``Normal.sample`` draws it,
so a seed gives the same draws. A policy outside what it covers (:func:`covers`) is left to
torch. tests/test_numpy_policy.py checks it against the torch policy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor

ACTIVATIONS = {torch.nn.Tanh: np.tanh, torch.nn.ReLU: lambda h: np.maximum(h, 0, out=h)}
_HALF_LOG_2PI = np.float32(0.5 * math.log(2 * math.pi))


def covers(policy: torch.nn.Module) -> bool:
    """Whether :class:`NumpyForward` computes this policy's forward: an ActorCriticPolicy on
    flat Box observations with a diagonal Gaussian (no gSDE, no squashing), a shared flatten
    extractor and MLPs of Linear layers and Tanh or ReLU, float32 on the CPU."""
    if not (type(policy).forward is ActorCriticPolicy.forward
            and isinstance(policy, ActorCriticPolicy)
            and isinstance(policy.action_dist, DiagGaussianDistribution)
            and not policy.use_sde and not policy.squash_output
            and policy.share_features_extractor
            and type(policy.features_extractor) is FlattenExtractor
            and isinstance(policy.action_net, torch.nn.Linear)
            and isinstance(policy.value_net, torch.nn.Linear)):
        return False
    for net in (policy.mlp_extractor.policy_net, policy.mlp_extractor.value_net):
        if not isinstance(net, torch.nn.Sequential) or _layers(net) is None:
            return False
    return all(p.dtype == torch.float32 and p.device.type == "cpu"
               for p in policy.parameters())


def _layers(net: torch.nn.Sequential) -> list[tuple[torch.nn.Linear, type]] | None:
    """(Linear, activation) pairs of an SB3 MLP, or None for any other shape."""
    modules, layers = list(net), []
    while modules:
        linear = modules.pop(0)
        act = type(modules.pop(0)) if modules else None
        if not isinstance(linear, torch.nn.Linear) or act not in ACTIVATIONS:
            return None
        layers.append((linear, act))
    return layers


def _view(p: torch.Tensor) -> np.ndarray:
    return p.detach().numpy()  # the parameter's own storage: no copy


class NumpyForward:
    """The policy's rollout forward (actions, values, log-probabilities) in NumPy, on its
    current weights; call it as ``ActorCriticPolicy.forward`` is called, on a float32 batch."""

    def __init__(self, policy: ActorCriticPolicy):
        def mlp(net: torch.nn.Sequential) -> list:
            return [(_view(lin.weight).T, _view(lin.bias), ACTIVATIONS[act])
                    for lin, act in _layers(net)]

        self.pi, self.vf = mlp(policy.mlp_extractor.policy_net), mlp(
            policy.mlp_extractor.value_net)
        self.mean = (_view(policy.action_net.weight).T, _view(policy.action_net.bias))
        self.value = (_view(policy.value_net.weight).T, _view(policy.value_net.bias))
        self.log_std = _view(policy.log_std)

    @classmethod
    def for_policy(cls, policy: ActorCriticPolicy) -> NumpyForward | None:
        """A forward on the policy's weights as they are now, or None where torch must run it."""
        return cls(policy) if covers(policy) else None

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = obs.numpy().reshape(len(obs), -1)
        h_pi, h_vf = x, x
        for w, b, act in self.pi:
            h_pi = act(h_pi @ w + b)
        for w, b, act in self.vf:
            h_vf = act(h_vf @ w + b)
        mean = h_pi @ self.mean[0] + self.mean[1]
        value = h_vf @ self.value[0] + self.value[1]
        eps = torch.randn(mean.shape).numpy()  # torch's generator, as Normal.sample draws
        actions = mean + np.exp(self.log_std) * eps
        log_prob = (-0.5 * eps * eps - self.log_std - _HALF_LOG_2PI).sum(axis=1)
        return torch.from_numpy(actions), torch.from_numpy(value), torch.from_numpy(log_prob)
