"""Time optimizer.step() of FOP against torch's Adam and SGD-momentum, in one process.

torch's optimizers are timed both ways: their default (a loop over tensors on CPU) and their
fused kernels, which the optimizer names momentum and adam run.

Two models: (a) SB3's default PPO policy for BipedalWalker-v3 (13 tensors, 64-wide), and
(b) an MLP with two 1024-wide hidden layers. Each repeat times every optimizer on the same
gradients, interleaved, so machine noise hits all alike; ratios are per repeat, then medians.
Time is the thread's CPU time (torch runs on this one thread): time spent waiting for a core
that other jobs hold does not count, so the ratios hold on a busy machine.

    python benchmarks/optimizer_step.py [--repeats 7] [--steps 200] [--widths 64 2] [--no-mlp]

FOP's variants are timed twice, with its C++ step (where it applies) and from Python.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from fop_rl.optim import FOP


def _fop(native: bool = True, groups: bool = False, **options) -> Callable:
    """FOP with the walker's tuned scale of settings; ``groups``: every other tensor in a second
    param group whose P is not capped (the policy cap's two pools)."""
    def make(ps: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        params = [{"params": ps[::2]}, {"params": ps[1::2], "max_eigenvalue": None}] if groups \
            else ps
        return FOP(params, lr=1e-3, momentum=0.9, hyper_lr=1e-4, native=native, **options)
    return make


# FOP's variants, each also with its calls made from Python (FOP's C++ step off): "-python"
VARIANTS: dict[str, dict] = {
    "full": {}, "lowrank": {"structure": "lowrank"}, "flat": {"side": "flat"},
    "cap": {"max_eigenvalue": 10.0}, "pcap": {"max_eigenvalue": 10.0, "groups": True},
    "hnorm": {"hyper_normalize": True}, "gamma": {"target_norm": 4.0}, "kron": {"side": "both"},
    "adam": {"base": "adam"},
}
OPTIMIZERS: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    **{f"fop-{name}{suffix}": _fop(native, **options) for name, options in VARIANTS.items()
       for suffix, native in (("", True), ("-python", False))},
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9),
    # what the optimizer names momentum and adam run (fop_rl.optimizers)
    "sgd-momentum-fused": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, fused=True),
    "adam-fused": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
}


def bipedal_policy(width: int = 64) -> torch.nn.Module:
    """SB3's default walker policy; another ``width`` of its hidden layers keeps its tensors,
    and so FOP's calls, with other sizes (2: the calls with almost no arithmetic)."""
    obs = gym.spaces.Box(-1, 1, (24,))
    act = gym.spaces.Box(-1, 1, (4,))
    return ActorCriticPolicy(obs, act, lambda _: 3e-4,
                             net_arch={"pi": [width, width], "vf": [width, width]})


def wide_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(24, 1024), torch.nn.Tanh(),
                               torch.nn.Linear(1024, 1024), torch.nn.Tanh(),
                               torch.nn.Linear(1024, 4))


def time_steps(model: torch.nn.Module, make: Callable, steps: int) -> float:
    """CPU seconds per step(), after warm-up steps (the first one builds FOP's state)."""
    params = [p for p in model.parameters()]
    gen = torch.Generator().manual_seed(0)
    grads = [[torch.randn(p.shape, generator=gen) * 1e-2 for p in params] for _ in range(4)]
    opt = make(params)
    for i in range(5):
        for p, g in zip(params, grads[i % 4], strict=True):
            p.grad = g
        opt.step()
    start = time.thread_time()
    for i in range(steps):
        for p, g in zip(params, grads[i % 4], strict=True):
            p.grad = g
        opt.step()
    return (time.thread_time() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--widths", type=int, nargs="+", default=[64],
                        help="hidden widths of the walker policy (SB3's: 64)")
    parser.add_argument("--no-mlp", action="store_true", help="skip the 1024-wide MLP")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.repeats} repeats")
    models = [(f"(a) SB3 BipedalWalker policy{'' if w == 64 else f', {w} wide'}",
               functools.partial(bipedal_policy, w), args.steps) for w in args.widths]
    if not args.no_mlp:
        models.append(("(b) MLP 1024x1024", wide_mlp, max(args.steps // 10, 10)))
    for label, build, steps in models:
        times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
        for _ in range(args.repeats):
            for name, make in OPTIMIZERS.items():
                torch.manual_seed(0)
                times[name].append(time_steps(build(), make, steps))
        print(f"\n{label}: median step time")
        for name, ts in times.items():
            print(f"  {name:14s} {statistics.median(ts) * 1e6:10.1f} us")
        pairs = [(fop, base) for fop in ("fop-full", "fop-full-python", "fop-lowrank")
                 for base in ("adam", "sgd-momentum", "adam-fused", "sgd-momentum-fused")]
        pairs += [(f"fop-{n}", f"fop-{n}-python") for n in VARIANTS]  # C++ step against Python
        pairs += [(f"fop-{n}", "fop-full") for n in VARIANTS if n != "full"]
        for a, b in pairs:
            ratios = [x / y for x, y in zip(times[a], times[b], strict=True)]
            print(f"  {a}/{b}: median {statistics.median(ratios):.2f}x "
                  f"(min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
