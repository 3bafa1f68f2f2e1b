"""Optimizer names of the CLI and configs, turned into SB3's optimizer_class / optimizer_kwargs.

A name is one of :data:`OPTIMIZERS` or any ``torch.optim.Optimizer`` subclass by import path,
``package.module:Class`` (for example ``torch.optim:AdamW``): its options are the class's own
keyword arguments, checked against its signature and by the class (:func:`check_values`),
and its lr, left out, its class's default. Every name trains the policy and value networks
(one SB3 optimizer covers both) through
``PPO(policy_kwargs=dict(optimizer_class=..., optimizer_kwargs=...))``; the learning rate goes
to PPO itself, which hands it to the optimizer and schedules it. A name in
:data:`VALUE_GROUPS` gives the value function's parameters options of their own
(:class:`fop_rl.policies.SplitPolicy`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from typing import TYPE_CHECKING, Any

from fop_rl.text import first_line

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
    # FOP learned afresh at each PPO update (RESET_EACH_UPDATE): P and its hyper-optimizer's
    # state reset, the momentum kept, as the field resets optimizers when the target changes
    "fop-reset-momentum": (FOP, {"structure": "full"}, ("momentum", *FOP_OPTIONS)),
    "shd-momentum": (FOP, {"structure": "scalar"}, ("momentum", "hyper_lr", "hyper_optimizer")),
    "pphd-momentum": (FOP, {"structure": "diagonal"},
                      ("momentum", "hyper_lr", "hyper_optimizer")),
    # The ecosystem's leading optimizers (all but AdamW need `pip install -e '.[optimizers]'`;
    # why each: docs/optimizers.md). AdamW: Adam with decoupled weight decay
    "adamw": ("torch.optim.AdamW", {"fused": True}, ("eps", "weight_decay")),
    # Lion (Chen et al. 2023): the sign of an interpolated momentum, found by program search
    "lion": ("pytorch_optimizer.Lion", {}, ("weight_decay",)),
    # schedule-free AdamW (Defazio et al. 2024): evaluated and saved at its average (modes.py)
    "sf-adamw": ("schedulefree.AdamWScheduleFree", {}, ("weight_decay", "warmup_steps")),
    # Prodigy (Mishchenko and Defazio 2024): learns its own step size; lr 1.0 multiplies it
    "prodigy": ("prodigyopt.Prodigy", {}, ("d_coef", "weight_decay")),
    # SOAP (Vyas et al. 2025): Adam in the eigenbasis of Shampoo's preconditioner
    "soap": ("pytorch_optimizer.SOAP", {}, ("weight_decay", "precondition_frequency")),
}
# module -> the distribution that installs it, for the names outside torch and fop-rl
PACKAGES = {"pytorch_optimizer": "pytorch-optimizer", "schedulefree": "schedulefree",
            "prodigyopt": "prodigyopt"}
OPTIMIZER_KEYS = {name: ("lr", *options) for name, (_, _, options) in OPTIMIZERS.items()}
# names whose FOP starts afresh at each PPO update (fop_rl.callbacks.ResetPreconditioners)
RESET_EACH_UPDATE = ("fop-reset-momentum",)
# name -> options of the value function's param group
VALUE_GROUPS: dict[str, dict[str, Any]] = {"fop-policy-momentum": {"structure": "none"},
                                           "fop-pcap-momentum": {"max_eigenvalue": None}}


IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


class OptimizerError(ValueError):
    """An optimizer by import path that cannot train: the message says why, on one line."""


def is_import_path(name: str) -> bool:
    """Whether an optimizer name is an import path (``package.module:Class``), not a packaged
    name."""
    return ":" in name


def name_problem(name: str) -> str | None:
    """None for a packaged name or a well-formed import path, else why not (without importing
    anything)."""
    if name in OPTIMIZERS or IMPORT_PATH.fullmatch(name):
        return None
    return (f"must be one of {', '.join(OPTIMIZERS)}, or a torch optimizer's import path "
            "package.module:Class (for example torch.optim:AdamW)")


def missing_package(name: str) -> str | None:
    """Why a packaged name cannot train here (its library is not installed), or None; finds
    the module without importing it."""
    if is_import_path(name):
        return None
    module = OPTIMIZERS[name][0].partition(".")[0]
    if module in PACKAGES and importlib.util.find_spec(module) is None:
        return (f"{name} needs {PACKAGES[module]}: pip install {PACKAGES[module]} (or "
                "pip install -e '.[optimizers]' in a checkout)")
    return None


def folder_name(name: str) -> str:
    """The optimizer's folder in a runs directory: its name, with an import path's ``:`` as
    ``.`` (a colon in a path trips up scp, TensorBoard's --logdir_spec and other tools)."""
    return name.replace(":", ".")


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The torch optimizer class behind an optimizer name (OptimizerError for an import path
    that does not give one)."""
    if is_import_path(name):
        return _imported(name)
    module, _, attribute = OPTIMIZERS[name][0].rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def _imported(path: str) -> type[torch.optim.Optimizer]:
    if not IMPORT_PATH.fullmatch(path):
        raise OptimizerError(f"{path!r} is not an import path package.module:Class")
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or module_name
        top = missing.split(".")[0]
        if module_name == missing or module_name.startswith(missing + "."):
            if missing == top:
                raise OptimizerError(f"{path}: {top} is not installed (pip install {top}, or "
                                     "the package that provides it)") from None
            raise OptimizerError(f"{path}: there is no module {missing}") from None
        raise OptimizerError(f"{path}: importing {module_name} needs {missing}, which is not "
                             f"installed (pip install {top})") from None
    except Exception as e:  # a module that fails on import
        raise OptimizerError(f"{path}: importing {module_name} failed "
                             f"({type(e).__name__}: {first_line(e)})") from None
    cls = getattr(module, attribute, None)
    if cls is None:
        raise OptimizerError(f"{path}: {module_name} has no {attribute}")
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise OptimizerError(f"{path} is not a torch.optim.Optimizer subclass")
    return cls


def accepted_options(name: str) -> tuple[str, ...] | None:
    """The keys an optimizer's config entry takes (lr among them); None: any key (a class
    whose signature takes ``**kwargs``)."""
    if not is_import_path(name):
        return OPTIMIZER_KEYS[name]
    parameters = list(inspect.signature(_imported(name)).parameters.values())[1:]  # not params
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                               inspect.Parameter.KEYWORD_ONLY))


def default_lr(name: str) -> float | None:
    """An import path's class's own default learning rate, if it has a positive number."""
    lr = inspect.signature(_imported(name)).parameters.get("lr")
    default = None if lr is None else lr.default
    ok = isinstance(default, int | float) and not isinstance(default, bool) and default > 0
    return float(default) if ok else None


def unknown_key(name: str, options: dict[str, Any]) -> str | None:
    """The first key of an import path's config entry that its class does not take, or None
    (OptimizerError if the class takes no lr, which PPO sets and schedules)."""
    known = accepted_options(name)
    if known is None:
        return None
    if "lr" not in known:
        raise OptimizerError(f"{name} takes no lr, which PPO sets and schedules")
    return next((key for key in options if key not in known), None)


def check_values(name: str, options: dict[str, Any]) -> None:
    """OptimizerError unless an import path's class accepts the values of its config entry
    (lr included) and parameters of the shapes PPO gives it, asked by building it once on a
    small weight matrix and a bias."""
    cls = _imported(name)
    import torch

    probe = [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))]
    try:
        cls(probe, **options)
    except Exception as e:
        raise OptimizerError(f"optimizers.{name}: {cls.__name__} refuses these options or "
                             f"PPO's parameters ({type(e).__name__}: {first_line(e)})") from None


def described(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """What run.json records of the optimizer: its class by import path and the keyword
    arguments it is built with (PPO gives it lr, from the config entry, and schedules it)."""
    cls, kwargs = _optimizer(name, options)
    return {"optimizer_class": f"{cls.__module__}:{cls.__qualname__}",
            "optimizer_kwargs": {"lr": options["lr"], **kwargs}}


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
    cls = optimizer_class(name)
    if is_import_path(name):
        return cls, {k: v for k, v in options.items() if k != "lr"}
    _, fixed, _ = OPTIMIZERS[name]
    kwargs = {**fixed, **{k: v for k, v in options.items() if k != "lr"}}
    if name == "adam":
        kwargs.setdefault("eps", 1e-5)  # SB3's default, which it drops once kwargs are given
    elif OPTIMIZERS[name][0] == FOP and "eps" in kwargs:  # fop-adam: the Adam base's eps
        kwargs["base_kwargs"] = {"eps": kwargs.pop("eps")}
    return cls, kwargs
