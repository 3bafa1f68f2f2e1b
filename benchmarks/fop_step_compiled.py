"""FOP's step under torch.compile: is a compiled step faster than FOP's hand-batched eager one?

The packaged fop-momentum's path (full P on the input side, Adam hyper-optimizer, SGD-momentum
base) written as one function of its tensors, batched by shape as FOP's buckets are, timed
eager and under ``torch.compile(fullgraph=True)`` against ``fop_rl.optim.FOP``'s step made from
Python (``native=False``) and torch's SGD, on SB3's walker policy, with optimizer_step.py's
harness (same gradients, interleaved, the thread's CPU time, medians of repeats). The function
does a little less than FOP: no finiteness check, no diagnostics state. Before timing, both run
the same 20 steps from the same weights: the largest differences from FOP's parameters and M's
are printed, so the function timed is FOP's step.

    python benchmarks/fop_step_compiled.py [--repeats 5] [--steps 300] [--cpp-wrapper]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from optimizer_step import OPTIMIZERS, bipedal_policy, time_steps  # beside this

LR, MOMENTUM, HYPER_LR = 1e-3, 0.9, 1e-4  # optimizer_step.py's fop-full
BETAS, EPS = (0.9, 0.999), 1e-8  # torch Adam's defaults, as FOP's hyper-Adam


def fop_step(buckets: tuple, grads: list, params: list, Ms: list, exp_avg: list,
             exp_avg_sq: list, R_prev: list, X_prev: list, velocity: list, t: torch.Tensor,
             hyper: bool) -> None:
    """One FOP-momentum step on every bucket (tensor indices, n, d), in place.

    H = -eta (C + C^T) M with C = R^T R_prev where n > d / 2 and n > 1 (FOP's route there), else
    H = -eta (R^T X_prev + R_prev^T R M); Adam on M; D = R M M^T; SGD-momentum with D.
    """
    if hyper:
        t.add_(1)
        bias1, bias2 = 1 - BETAS[0] ** t, 1 - BETAS[1] ** t
    for k, (indices, n, d) in enumerate(buckets):
        R = torch.stack([grads[i].reshape(n, d) for i in indices])
        M = Ms[k]
        if hyper:
            if 2 * n > d and n > 1:
                C = R.mT @ R_prev[k]
                H = -LR * ((C + C.mT) @ M)
            else:
                H = -LR * (R.mT @ X_prev[k] + R_prev[k].mT @ (R @ M))
            exp_avg[k].lerp_(H, 1 - BETAS[0])
            exp_avg_sq[k].mul_(BETAS[1]).addcmul_(H, H, value=1 - BETAS[1])
            denominator = (exp_avg_sq[k] / bias2).sqrt().add_(EPS)
            M.addcdiv_(exp_avg[k], denominator, value=-HYPER_LR / bias1)
        X = R @ M
        D = X @ M.mT
        X_prev[k].copy_(X)
        R_prev[k].copy_(R)
        for j, i in enumerate(indices):
            velocity[i].mul_(MOMENTUM).add_(D[j].reshape(velocity[i].shape))
            params[i].sub_(velocity[i], alpha=LR)


class FunctionalFOP:
    """``fop_step`` with its state, stepped like a torch optimizer (gradients in ``p.grad``)."""

    def __init__(self, params: list[torch.nn.Parameter], step: Callable) -> None:
        self.params, self.step_fn, self.hyper = params, step, False
        groups: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(params):
            groups.setdefault(tuple(p.shape) if p.dim() == 2 else (1, p.numel()), []).append(i)
        self.buckets = tuple((tuple(idx), n, d) for (n, d), idx in groups.items())
        self.Ms = [torch.eye(d).repeat(len(idx), 1, 1) for idx, _, d in self.buckets]
        self.exp_avg = [torch.zeros_like(M) for M in self.Ms]
        self.exp_avg_sq = [torch.zeros_like(M) for M in self.Ms]
        self.R_prev = [torch.zeros(len(idx), n, d) for idx, n, d in self.buckets]
        self.X_prev = [torch.zeros_like(R) for R in self.R_prev]
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.t = torch.zeros(())

    @torch.no_grad()
    def step(self) -> None:
        self.step_fn(self.buckets, [p.grad for p in self.params], self.params, self.Ms,
                     self.exp_avg, self.exp_avg_sq, self.R_prev, self.X_prev, self.velocity,
                     self.t, self.hyper)
        self.hyper = True


def differences(make: Callable, steps: int = 20) -> str:
    """After ``steps`` steps on the same gradients from the same start: the largest difference
    from FOP's parameters and from its M's, and how far FOP's M's moved from I (the scale that
    the M difference is small against)."""
    models = [bipedal_policy(), bipedal_policy()]
    models[1].load_state_dict(models[0].state_dict())
    fop, other = OPTIMIZERS["fop-full-python"](list(models[0].parameters())), make(
        list(models[1].parameters()))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=gen) * 1e-2 for p in models[0].parameters()]
        for model, opt in zip(models, (fop, other), strict=True):
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad = g.clone()
            opt.step()
    theta = max(float((a - b).detach().abs().max()) for a, b in zip(models[0].parameters(),
                                                          models[1].parameters(), strict=True))
    fop_Ms = [[fop.state[models[0].get_parameter(name)]["fop_M"] for name in names]
              for names in ([n for i, (n, _) in enumerate(models[0].named_parameters())
                             if i in indices] for indices, _, _ in other.buckets)]
    M = max(float((torch.stack(a) - b).abs().max()) for a, b in zip(fop_Ms, other.Ms,
                                                                     strict=True))
    moved = max(float((m - torch.eye(m.shape[0])).abs().max()) for ms in fop_Ms for m in ms)
    return (f"largest |theta - theta_FOP| {theta:.1e}, |M - M_FOP| {M:.1e} "
            f"(FOP's M moved {moved:.1e} from I)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cpp-wrapper", action="store_true",
                        help="inductor's C++ wrapper instead of its Python one")
    args = parser.parse_args()
    torch.set_num_threads(1)
    compiled = torch.compile(fop_step, fullgraph=True,
                             options={"cpp_wrapper": True} if args.cpp_wrapper else None)
    variants = {
        "fop (FOP, eager)": OPTIMIZERS["fop-full-python"],
        "function, eager": lambda ps: FunctionalFOP(ps, fop_step),
        "function, compiled": lambda ps: FunctionalFOP(ps, compiled),
        "sgd-momentum": OPTIMIZERS["sgd-momentum"],
        "sgd-momentum-fused": OPTIMIZERS["sgd-momentum-fused"],
    }
    print(f"torch {torch.__version__}, 1 thread, {args.repeats} repeats, "
          f"inductor wrapper: {'C++' if args.cpp_wrapper else 'Python'}")
    start = time.perf_counter()
    for name in ("function, eager", "function, compiled"):  # the compiled one compiles here
        print(f"  {name}, after 20 steps: {differences(variants[name])}")
    print(f"  (compiling and checking: {time.perf_counter() - start:.0f} s)")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():
            torch.manual_seed(0)
            times[name].append(time_steps(bipedal_policy(), make, args.steps))
    print("\nSB3 BipedalWalker policy: median step time")
    for name, ts in times.items():
        print(f"  {name:20s} {statistics.median(ts) * 1e6:8.1f} us")
    for name in ("function, eager", "function, compiled", "sgd-momentum"):
        ratios = [a / b for a, b in zip(times[name], times["fop (FOP, eager)"], strict=True)]
        print(f"  {name} / fop: median {statistics.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
