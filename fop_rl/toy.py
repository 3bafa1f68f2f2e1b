"""Toy problems of the paper's figure 1: SGD, SGD+FOP and Adam from the same start point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fop_rl.optim import FOP


def booth(x: torch.Tensor) -> torch.Tensor:
    return (x[0] + 2 * x[1] - 7) ** 2 + (2 * x[0] + x[1] - 5) ** 2


def himmelblau(x: torch.Tensor) -> torch.Tensor:
    return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


@dataclass(frozen=True)
class Problem:
    """A 2-D test function with the start point, learning rates and view used by ``fop-rl toy``."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    lr: float
    hyper_optimizer: str
    hyper_lr: float
    adam_lr: float
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax


# Hyper settings: the fewest iterations on the grid of docs/toy.md (hyper-optimizer SGD or Adam,
# hyper_lr 1e-6 to 3e-1) at this lr; Adam gets the same lr as SGD.
PROBLEMS = {
    "booth": Problem(booth, (-6.0, -6.0), lr=4e-3, hyper_optimizer="sgd", hyper_lr=1e-2,
                     adam_lr=4e-3, bounds=(-8, 6, -8, 8)),
    "himmelblau": Problem(himmelblau, (0.0, -1.0), lr=2e-3, hyper_optimizer="adam",
                          hyper_lr=3e-1, adam_lr=2e-3, bounds=(-5, 5, -5, 5)),
    "rosenbrock": Problem(rosenbrock, (-1.5, 2.0), lr=5e-4, hyper_optimizer="adam",
                          hyper_lr=1e-2, adam_lr=5e-4, bounds=(-2, 2, -1, 3)),
}


@dataclass
class Trajectory:
    name: str
    points: np.ndarray  # (iterations + 1, 2)
    losses: np.ndarray
    iterations_to_tol: int | None  # None: not within the budget


def optimize(problem: Problem, name: str,
             make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
             iterations: int, tol: float) -> Trajectory:
    """Run one optimizer from the problem's start until loss < tol or the budget is spent."""
    x = torch.tensor(problem.start, dtype=torch.float64, requires_grad=True)
    opt = make([x])
    points, losses, reached = [x.detach().clone()], [], None
    for i in range(iterations):
        opt.zero_grad()
        loss = problem.fn(x)
        losses.append(loss.item())
        if losses[-1] < tol:
            reached = i
            break
        loss.backward()
        opt.step()
        points.append(x.detach().clone())
    return Trajectory(name, torch.stack(points).numpy(), np.array(losses), reached)


def compare(problem_name: str, lr: float | None = None, hyper_lr: float | None = None,
            hyper_optimizer: str | None = None, iterations: int = 20_000,
            tol: float = 1e-6) -> list[Trajectory]:
    """SGD, SGD+FOP (same lr) and Adam on one problem."""
    p = PROBLEMS[problem_name]
    lr = p.lr if lr is None else lr
    hyper_lr = p.hyper_lr if hyper_lr is None else hyper_lr
    hyper_optimizer = hyper_optimizer or p.hyper_optimizer
    runs = {
        "SGD": lambda ps: torch.optim.SGD(ps, lr=lr),
        "SGD+FOP": lambda ps: FOP(ps, lr=lr, momentum=0.0, hyper_lr=hyper_lr,
                                  hyper_optimizer=hyper_optimizer),
        "Adam": lambda ps: torch.optim.Adam(ps, lr=p.adam_lr),
    }
    return [optimize(p, name, make, iterations, tol) for name, make in runs.items()]


def plot(problem_name: str, trajectories: list[Trajectory], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = PROBLEMS[problem_name]
    xmin, xmax, ymin, ymax = p.bounds
    xs, ys = np.meshgrid(np.linspace(xmin, xmax, 300), np.linspace(ymin, ymax, 300))
    zs = p.fn(torch.from_numpy(np.stack([xs, ys]))).numpy()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contour(xs, ys, np.log10(zs + 1e-3), levels=30, cmap="viridis", linewidths=0.7)
    for t in trajectories:
        steps = "not reached" if t.iterations_to_tol is None else f"{t.iterations_to_tol} it."
        ax.plot(t.points[:, 0], t.points[:, 1], lw=1.6, label=f"{t.name} ({steps})")
    ax.plot(*p.start, "o", color="red", label="start")
    ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax), xlabel="x", ylabel="y",
           title=f"{problem_name.capitalize()}: iterations to loss < 1e-6")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
