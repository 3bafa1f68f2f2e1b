"""Optimizer names of the CLI and configs, turned into SB3's optimizer_class / optimizer_kwargs.

Every name trains the policy and value networks (one SB3 optimizer covers both) through
``PPO(policy_kwargs=dict(optimizer_class=..., optimizer_kwargs=...))``; the learning rate
goes to PPO itself, which hands it to the optimizer and schedules it. A name in
:data:`VALUE_GROUPS` gives the value function's parameters options of their own
(:class:`fop_rl.policies.SplitPolicy`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from stable_baselines3.common.policies import ActorCriticPolicy

# the options every FOP name takes besides its own
FOP_OPTIONS = ("hyper_lr", "hyper_optimizer", "side", "rank", "max_full_dim")
SGD, ADAM, FOP = "torch.optim.SGD", "torch.optim.Adam", "fop_rl.optim.FOP"

# name -> (class, as an import path: configs are checked without importing torch; fixed kwargs;
# options a config may set besides lr). torch's SGD and Adam run their fused kernels: one call
# per step for all tensors (the same update; FOP fuses its SGD base itself).
OPTIMIZERS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "momentum": (SGD, {"fused": True}, ("momentum",)),
    "adam": (ADAM, {"fused": True}, ("eps",)),
    "fop-momentum": (FOP, {"structure": "full"}, ("momentum", *FOP_OPTIONS)),
    "fop-adam": (FOP, {"structure": "full", "base": "adam"}, (*FOP_OPTIONS, "eps")),
    "fop-norm-momentum": (FOP, {"structure": "full", "normalize": True},
                          ("momentum", *FOP_OPTIONS)),
    # P over each tensor's whole flattened vector (low rank above max_full_dim)
    "fop-flat-momentum": (FOP, {"structure": "full", "side": "flat"},
                          ("momentum", "hyper_lr", "hyper_optimizer", "rank", "max_full_dim")),
    # P's largest eigenvalue capped at max_eigenvalue
    "fop-cap-momentum": (FOP, {"structure": "full"}, ("momentum", *FOP_OPTIONS, "max_eigenvalue")),
    # the paper's schedule: P rescaled to spectral norm gamma(t), from ||P|| to target_norm
    "fop-gamma-momentum": (FOP, {"structure": "full"},
                           ("momentum", *FOP_OPTIONS, "target_norm", "norm_delay")),
    # hypergradients divided by the sizes of the two gradients: the hyper-step follows their cosine
    "fop-hnorm-momentum": (FOP, {"structure": "full", "hyper_normalize": True},
                           ("momentum", *FOP_OPTIONS)),
    # Kronecker FOP: Linear weights preconditioned on both sides, P_out G P_in
    "fop-kron-momentum": (FOP, {"structure": "full", "side": "both"},
                          ("momentum", "hyper_lr", "hyper_optimizer", "rank", "max_full_dim",
                           "max_eigenvalue")),
    # FOP on the policy's layers only; the value function's are left to momentum (VALUE_GROUPS)
    "fop-policy-momentum": (FOP, {"structure": "full"}, ("momentum", *FOP_OPTIONS)),
    # P's largest eigenvalue capped in the policy's layers only (VALUE_GROUPS: not the value
    # function's), where the terrain study saw it run away in the runs that lost their policy
    "fop-pcap-momentum": (FOP, {"structure": "full"}, ("momentum", *FOP_OPTIONS, "max_eigenvalue")),
    "shd-momentum": (FOP, {"structure": "scalar"}, ("momentum", "hyper_lr", "hyper_optimizer")),
    "pphd-momentum": (FOP, {"structure": "diagonal"},
                      ("momentum", "hyper_lr", "hyper_optimizer")),
}
OPTIMIZER_KEYS = {name: ("lr", *options) for name, (_, _, options) in OPTIMIZERS.items()}
# name -> options of the value function's param group
VALUE_GROUPS: dict[str, dict[str, Any]] = {"fop-policy-momentum": {"structure": "none"},
                                           "fop-pcap-momentum": {"max_eigenvalue": None}}


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The torch optimizer class behind an optimizer name."""
    module, _, attribute = OPTIMIZERS[name][0].rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def policy_setup(name: str, options: dict[str, Any]
                 ) -> tuple[str | type[ActorCriticPolicy], dict[str, Any]]:
    """SB3's policy and the optimizer's part of its policy_kwargs, from a name and its config
    entry."""
    if name in VALUE_GROUPS:
        from fop_rl.policies import SplitPolicy

        policy, extra = SplitPolicy, {"value_group": VALUE_GROUPS[name]}
    else:
        policy, extra = "MlpPolicy", {}
    cls, kwargs = _optimizer(name, options)
    return policy, dict(optimizer_class=cls, optimizer_kwargs=kwargs, **extra)


def _optimizer(name: str, options: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    _, fixed, _ = OPTIMIZERS[name]
    cls = optimizer_class(name)
    kwargs = {**fixed, **{k: v for k, v in options.items() if k != "lr"}}
    if name == "adam":
        kwargs.setdefault("eps", 1e-5)  # SB3's default, which it drops once kwargs are given
    elif "eps" in kwargs:  # fop-adam: eps belongs to the Adam base
        kwargs["base_kwargs"] = {"eps": kwargs.pop("eps")}
    return cls, kwargs
