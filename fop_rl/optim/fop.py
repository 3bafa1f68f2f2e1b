"""The public optimizer: FOP around a torch base optimizer, and its diagnostics."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from fop_rl.optim.buckets import Bucket, KroneckerBucket
from fop_rl.optim.native import extension as native_extension
from fop_rl.optim.pool import Pool
from fop_rl.optim.structures import (
    SIDES,
    STRUCTURES,
    Layout,
    layout_of,
    numel_target,
    rayleigh,
    schedule,
    target_scale,
    trace,
)

HYPER_OPTIMIZERS = ("adam", "sgd")
BASES: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
MAX_DENSE = 256  # widest low-rank P that diagnostics make as a d x d matrix


class FOP(torch.optim.Optimizer):
    r"""First-Order Preconditioning around a standard torch optimizer (the update rule and each
    structure's math: the docstring of :mod:`fop_rl.optim`).

    Args:
        params: tensors or param-group dicts, as for any torch optimizer (named parameters too).
        lr: learning rate :math:`\eta` of the base optimizer, also used by the hypergradient.
        momentum: momentum :math:`\mu` of the SGD base (ignored by other bases).
        hyper_lr: learning rate of the hyper-optimizer that learns :math:`M`.
        hyper_optimizer: ``"adam"`` (torch's defaults otherwise) or ``"sgd"``.
        structure: ``"full"``, ``"lowrank"``, ``"scalar"`` (S-HD), ``"diagonal"`` (PP-HD), or
            ``"none"``: no P, the base optimizer alone (for a param group FOP leaves alone).
        side: ``"input"`` or ``"output"``: which side of Linear weights is preconditioned;
            ``"both"``: both, by Kronecker factors (``full`` or ``lowrank`` only; not with
            ``normalize`` or ``target_norm``); ``"flat"``: each tensor's whole flattened vector.
        rank: rank of ``lowrank``; given with ``structure="full"``, asks for low rank everywhere.
        max_full_dim: ``full`` tensors with a larger :math:`d` use ``lowrank`` instead.
        normalize: FOP-norm: rescale :math:`P` to trace :math:`d`.
        max_eigenvalue: :math:`\kappa \ge 1`: :math:`P`'s largest eigenvalue never exceeds it
            (``M`` is rescaled after each hyper-step when a bound of it would); not with
            ``normalize``, whose :math:`P` does not change with ``M``'s scale.
        target_norm: :math:`p_\infty > 0`: the paper's schedule, :math:`P` rescaled at each step
            to spectral norm :math:`\gamma(t) = \delta(t) \|P\|_2 + (1 - \delta(t)) p_\infty`
            with :math:`\delta(t) = 1 / (1 + t / \tau)^2` (``norm_delay`` :math:`\tau > 0`,
            in hyper-steps); not with ``normalize``, ``max_eigenvalue`` or ``diagonal``.
        norm_delay: :math:`\tau` of ``target_norm``.
        hyper_normalize: divide each tensor's hypergradient by
            :math:`\|G_t\|\,\|G_{t-1}\|`, so the hyper-step follows the cosine of successive
            gradients, not their size.
        native: make the step's torch calls from C++ where P is full or low rank (on one side or
            both), Adam learns M and torch's SGD or Adam is the base (with the eigenvalue cap
            and hyper_normalize, not FOP-norm or the target norm): the same operations and
            results, about half the step's time on small layers (:mod:`fop_rl.optim.native`;
            built at the first step, where a C++ compiler and ninja are available).
        base: ``"sgd"``, ``"adam"`` or a torch optimizer class, stepped with :math:`D` as gradient.
        base_kwargs: extra keyword arguments for the base optimizer (betas, eps, nesterov...).
        **kwargs: the same, passed directly as to the base optimizer itself, e.g.
            ``FOP(params, lr=0.1, weight_decay=1e-4, nesterov=True)``; a keyword the base
            optimizer does not take is a TypeError naming it.

    Gradients must be dense: a sparse gradient is a ValueError.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        momentum: float = 0.9,
        hyper_lr: float = 1e-4,
        hyper_optimizer: str = "adam",
        structure: str = "full",
        side: str = "input",
        rank: int | None = None,
        max_full_dim: int = 128,
        normalize: bool = False,
        max_eigenvalue: float | None = None,
        target_norm: float | None = None,
        norm_delay: float = 100.0,
        hyper_normalize: bool = False,
        native: bool = True,
        base: str | type[torch.optim.Optimizer] = "sgd",
        base_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _check(lr >= 0, "lr", f"must be >= 0, got {lr}")
        _check(0 <= momentum < 1, "momentum", f"must be in [0, 1), got {momentum}")
        _check(hyper_lr >= 0, "hyper_lr", f"must be >= 0, got {hyper_lr}")
        _check(hyper_optimizer in HYPER_OPTIMIZERS, "hyper_optimizer",
               f"must be one of {HYPER_OPTIMIZERS}, got {hyper_optimizer!r}")
        _check(structure in STRUCTURES, "structure",
               f"must be one of {STRUCTURES}, got {structure!r}")
        _check(side in SIDES, "side", f"must be one of {SIDES}, got {side!r}")
        _check(rank is None or (isinstance(rank, int) and rank >= 1), "rank",
               f"must be an integer >= 1 or None, got {rank!r}")
        _check(max_full_dim >= 1, "max_full_dim", f"must be >= 1, got {max_full_dim}")
        _check(max_eigenvalue is None or max_eigenvalue >= 1, "max_eigenvalue",
               f"must be >= 1 (P starts at the identity), got {max_eigenvalue}")
        _check(max_eigenvalue is None or not normalize, "max_eigenvalue",
               "does not apply with normalize=True (FOP-norm's P ignores M's scale)")
        _check(target_norm is None or target_norm > 0, "target_norm",
               f"must be > 0, got {target_norm}")
        _check(norm_delay > 0, "norm_delay", f"must be > 0, got {norm_delay}")
        _check(target_norm is None or (not normalize and max_eigenvalue is None
                                       and structure != "diagonal"), "target_norm",
               "does not apply with normalize, max_eigenvalue or structure='diagonal' (each "
               "sets P's scale its own way)")
        if side == "both":  # Kronecker FOP: two factors, each a full or low-rank M
            _check(structure in ("full", "lowrank"), "structure",
                   f"side='both' learns full or low-rank factors, got {structure!r}")
            _check(not normalize, "normalize", "does not apply with side='both'")
            _check(target_norm is None, "target_norm", "does not apply with side='both'")
        if isinstance(base, str):
            _check(base in BASES, "base", f"must be one of {tuple(BASES)} or a torch optimizer "
                   f"class, got {base!r}")
            base_cls = BASES[base]
        else:
            _check(isinstance(base, type) and issubclass(base, torch.optim.Optimizer), "base",
                   f"must be one of {tuple(BASES)} or a torch optimizer class, got {base!r}")
            base_cls = base
        accepted = inspect.signature(base_cls).parameters
        for key in kwargs:
            if key not in accepted or key in ("params", "lr"):
                raise TypeError(f"FOP got an unexpected keyword argument {key!r} (not one of "
                                f"FOP's, nor of its base {base_cls.__name__}'s)")
        params = list(params)
        extra = {**(base_kwargs or {}), **kwargs}
        if base_cls is torch.optim.SGD:
            extra.setdefault("momentum", momentum)
        self._base = base_cls(params, lr=lr, **extra)
        defaults = dict(self._base.defaults, lr=lr, momentum=momentum, hyper_lr=hyper_lr,
                        hyper_optimizer=hyper_optimizer, structure=structure, side=side,
                        rank=rank, max_full_dim=max_full_dim, normalize=normalize,
                        max_eigenvalue=max_eigenvalue, target_norm=target_norm,
                        norm_delay=norm_delay, hyper_normalize=hyper_normalize, native=native)
        super().__init__(params, defaults)
        self._link_base()

    def _link_base(self) -> None:
        # The base optimizer shares our param groups, and keeps its state inside ours (under
        # "base": torch optimizers initialise a parameter's state when they find it empty), so
        # torch's state_dict() saves everything (SB3 keeps only the optimizer's state_dict).
        self._base.state = _BaseState(self.state)
        self._base.param_groups = self.param_groups
        self._pools: list[Pool] = []
        self._plain: list[Tensor] = []
        self._pool_key: tuple = ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # a state saved before an option existed: its default
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self._link_base()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "_base"):
            for key, value in self._base.defaults.items():
                self.param_groups[-1].setdefault(key, value)
            self._link_base()

    # --- state -------------------------------------------------------------------------------

    def _init_state(self, p: Tensor, layout: Layout, index: int,
                    group: Mapping[str, Any]) -> None:
        state = self.state[p]
        state["fop_hyper_step"] = 0
        state.setdefault("fop_nonfinite_skips", 0)  # kept by reset_preconditioners
        for i, (suffix, factor) in enumerate(layout.factors()):
            M = factor.init_param(p, seed=index + (i << 32))  # the two factors' draws differ
            state["fop_M" + suffix] = M
            state["fop_hyper_exp_avg" + suffix] = torch.zeros_like(M)
            state["fop_hyper_exp_avg_sq" + suffix] = torch.zeros_like(M)
        if group["target_norm"] is not None:  # the power iteration's start: any unit vector
            d = state["fop_M"].shape[0]
            state["fop_power_v"] = state["fop_M"].new_full((d, 1), 1.0 / math.sqrt(d))

    def _pool_base(self, group: Mapping[str, Any]) -> str | None:
        """Which base the pools of ``group`` step themselves by its fused kernel: torch SGD, or
        torch Adam without amsgrad or decoupled weight decay; neither where the group is
        differentiable or has a tensor learning rate. None: FOP steps its base optimizer."""
        if group["differentiable"] or isinstance(group["lr"], Tensor):
            return None
        if type(self._base) is torch.optim.SGD:
            return "sgd"
        if (type(self._base) is torch.optim.Adam and not group["amsgrad"]
                and not group["decoupled_weight_decay"]
                and not any(isinstance(b, Tensor) for b in group["betas"])):
            return "adam"
        return None

    def _prepare(self) -> tuple[list[Pool], list[Tensor]]:
        """Pools of the preconditioned tensors that have a gradient, and the other tensors.

        Rebuilt only when the set of tensors with a gradient changes, or which base the pools
        step (``load_state_dict`` and ``add_param_group`` start afresh).
        """
        bases = [self._pool_base(group) for group in self.param_groups]
        key = (*bases, *(p.grad is not None for group in self.param_groups
                         for p in group["params"]))
        if key == self._pool_key:
            return self._pools, self._plain
        self._plain = []
        buckets: dict[tuple, Bucket] = {}
        index = 0
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                index += 1
                layout = layout_of(p, group)
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError("FOP needs dense gradients: a parameter has a sparse one "
                                     "(for nn.Embedding, use sparse=False)")
                if layout is None:
                    self._plain.append(p)
                    continue
                state = self.state[p]
                if "fop_M" not in state:
                    self._init_state(p, layout, index, group)
                # A pool steps together: same group, dtype, device, hyper-step count, and
                # whether a previous gradient exists (none: no hypergradient yet).
                pool = (gi, p.dtype, p.device, "fop_prev_grad" in state, state["fop_hyper_step"])
                shape = (layout.structure, layout.n, layout.d, layout.rank, layout.outer)
                kind = Bucket if layout.outer is None else KroneckerBucket
                bucket = buckets.setdefault((pool, shape), kind([], []))
                bucket.params.append(p)
                bucket.layouts.append(layout)
        pools: dict[tuple, list[Bucket]] = {}
        for (pool, _), bucket in buckets.items():
            pools.setdefault(pool, []).append(bucket)
        self._pools = [Pool(self.state, bs, self.param_groups[pool[0]], bases[pool[0]])
                       for pool, bs in pools.items()]
        self._pool_key = key
        return self._pools, self._plain

    def reset_preconditioners(self) -> None:
        """Start FOP's learning afresh, keeping the base optimizer's: every P back to its start
        (M = I; low rank: the same draw of U), the hyper-optimizer's moments and step count and
        the previous gradient dropped, as in a new FOP; the base's momentum or moments and the
        count of skipped non-finite steps are kept. For PPO, whose objective changes at each
        update (Asadi et al., 2023: moment estimates from an earlier objective mislead the
        next), called at each update by fop_rl.callbacks.ResetPreconditioners."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state or "fop_M" not in state:
                    continue
                for key in [k for k in state
                            if k.startswith("fop_") and k != "fop_nonfinite_skips"]:
                    del state[key]
        self._pool_key = ()  # the pools are rebuilt from the state at the next step

    # --- the step ----------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Learn M from the hypergradient, precondition the gradients, step the base optimizer."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pools, plain = self._prepare()
        if self._step_native(pools, plain):
            return loss
        for pool in pools:
            pool.gather()
        hypergrads = [pool.hypergradients() for pool in pools]
        if not self._all_finite(pools, hypergrads, plain):
            return loss
        for pool, H in zip(pools, hypergrads, strict=True):
            if H is not None:
                pool.learn(H)
        for pool in pools:
            pool.precondition()
        self._step_base(pools, plain)
        for pool in pools:
            pool.remember()
        return loss

    def _step_native(self, pools: list[Pool], plain: list[Tensor]) -> bool:
        """The step with its calls made from C++, where every pool takes it and nothing else
        is stepped: one call for a pool alone; with several, their hypergradients, the check
        over all of them, then their updates. False, having done nothing, where it does not
        apply."""
        if plain or not pools or not all(p.group["native"] and p.takes_native() for p in pools):
            return False
        extension = native_extension()
        if extension is None or not all(pool.native_ready(extension) for pool in pools):
            return False
        if len(pools) == 1:
            pools[0].step_native()
            return True
        hypergrads: list[Tensor | None] = [pool.hypergradients_native() for pool in pools]
        if self._all_finite(pools, hypergrads, plain):
            for pool in pools:
                pool.update_native()
        return True

    def _step_base(self, pools: list[Pool], plain: list[Tensor]) -> None:
        """The base optimizer's step with D as gradient: pools with a ``base`` do their own,
        torch the rest (p.grad holds D meanwhile, then the raw gradient again)."""
        for pool in pools:
            if pool.base is not None:
                pool.base_step()
        if not plain and all(pool.base is not None for pool in pools):
            return
        raw = [(p, p.grad) for pool in pools for p in pool.params]
        for pool in pools:
            for p, D in zip(pool.params, pool.D_params, strict=True):
                p.grad = None if pool.base is not None else D
        try:
            self._base.step()
        finally:
            for p, g in raw:
                p.grad = g

    def _all_finite(self, pools: list[Pool], hypergrads: list[Tensor | None],
                    plain: list[Tensor]) -> bool:
        """True when every gradient and hypergradient is finite; else count offenders.

        A sum is non-finite when an entry is, or when it overflows: only gradients far too
        large to use can do that.
        """
        sums = [pool.checked[pool.cur].sum() for pool in pools] + [p.grad.sum() for p in plain]
        if math.isfinite(sum(float(s) for s in sums)):
            return True
        for pool, H in zip(pools, hypergrads, strict=True):
            pool.count_nonfinite(H)
        return False  # unpreconditioned tensors have no diagnostics to count in

    # --- diagnostics -------------------------------------------------------------------------

    @torch.no_grad()
    def diagnostics(
        self, names: Mapping[Tensor, str] | Iterable[tuple[str, Tensor]] | None = None
    ) -> list[PreconditionerDiagnostics]:
        """Describe every preconditioner learned so far, one entry per preconditioned tensor.

        Args:
            names: parameter names, as a ``{tensor: name}`` mapping or ``model.named_parameters()``.
                Without them, names come from named param groups, else ``"param<i>"``.
        """
        if names is None:
            by_id = {}
        elif isinstance(names, Mapping):
            by_id = {id(p): n for p, n in names.items()}
        else:
            by_id = {id(p): n for n, p in names}
        out = []
        index = 0
        for group in self.param_groups:
            group_names = group.get("param_names")
            for i, p in enumerate(group["params"]):
                index += 1
                state = self.state.get(p, {})
                layout = layout_of(p, group)
                if layout is None or "fop_M" not in state:
                    continue
                name = by_id.get(id(p)) or (group_names[i] if group_names else f"param{index - 1}")
                out.append(_describe(name, layout, group, state))
        return out


@dataclass
class PreconditionerDiagnostics:
    """What FOP learned for one tensor.

    Everything describes the effective preconditioner, the one applied to the gradient (after
    FOP-norm's or the target norm's rescaling, and any cap). ``matrix`` is P (d x d) for ``full``
    and ``lowrank`` up to :data:`MAX_DENSE` wide; for a wider low-rank P = c (I + U U^T), the
    factor c^(1/2) U (d x r), not P itself (4096 x 4096 for a flattened 64 x 64 weight); for
    ``scalar`` and ``diagonal``, whose P is diagonal, P's diagonal in the parameter's shape.
    ``shown`` says which. ``eigenvalues``: P's distinct eigenvalues, largest first (a low-rank
    P's last one, c, has multiplicity d - r). ``angle_deg`` is the angle between the last raw
    gradient and its preconditioned version (paper appendix figure A.1).

    Kronecker FOP (``side="both"``), P = P_out (x) P_in: ``matrix`` shows P_in, ``output``
    (named ``<name>.P_out``) describes P_out alone (its matrix and eigenvalues), and the
    eigenvalues, norm and angle here are P's: its eigenvalues are the products of the two
    factors'.
    """

    name: str
    shape: tuple[int, ...]
    structure: str
    frobenius_norm: float
    eig_min: float
    eig_max: float
    angle_deg: float
    nonfinite_skips: int
    matrix: Tensor
    shown: str
    eigenvalues: Tensor
    output: PreconditionerDiagnostics | None = None

    def panels(self) -> list[PreconditionerDiagnostics]:
        """The matrices to draw: this one, and the output factor of Kronecker FOP."""
        return [self] if self.output is None else [self, self.output]


def panels(diagnostics: Iterable[PreconditionerDiagnostics]) -> list[PreconditionerDiagnostics]:
    """Every learned matrix to show: each tensor's, and Kronecker FOP's output factors."""
    return [panel for d in diagnostics for panel in d.panels()]


@dataclass
class _Side:
    """One learned P = c M M^T (or c (I + U U^T), or diagonal c m^2), described."""

    matrix: Tensor
    shown: str
    eigs: Tensor
    norm: float
    apply: Callable[[Tensor], Tensor]  # rows (. x d) -> rows P


def _side(layout: Layout, M: Tensor, c: float) -> _Side:
    if layout.structure == "full":
        matrix = c * (M @ M.T)
        return _Side(matrix, "P", torch.linalg.eigvalsh(matrix.double()), float(matrix.norm()),
                     lambda rows: rows @ matrix)
    if layout.structure == "lowrank":
        gram = (M.T @ M).double()
        # eig(I + U U^T) = 1 + eig(U^T U), and 1 on the rest of the space
        eigs = c * (1 + torch.linalg.eigvalsh(gram))
        if layout.rank < layout.d:
            eigs = torch.cat([eigs, eigs.new_full((1,), c)])
        # ||I + U U^T||_F^2 = d + 2 tr(U^T U) + ||U^T U||_F^2, without making the d x d matrix
        norm = c * math.sqrt(layout.d + 2 * float(gram.trace()) + float(gram.square().sum()))
        if layout.d <= MAX_DENSE:
            matrix = c * torch.eye(layout.d, dtype=M.dtype, device=M.device).addmm_(M, M.T)
            shown = "P"
        else:
            matrix, shown = math.sqrt(c) * M, "factor U of P = I + U U^T"
        return _Side(matrix, shown, eigs, norm, lambda rows: c * (rows + (rows @ M) @ M.T))
    diagonal = (c * M.square()).expand(layout.n, layout.d)
    return _Side(layout.unrows(diagonal).clone(), "diagonal of P", diagonal.flatten().double(),
                 float(diagonal.norm()), lambda rows: rows * diagonal)


def _describe(name: str, layout: Layout, group: Mapping[str, Any],
              state: Mapping[str, Any]) -> PreconditionerDiagnostics:
    normalize, M = group["normalize"], state["fop_M"]
    c = float(numel_target(layout) / trace(layout, M[None])) if normalize else 1.0
    if group["target_norm"] is not None:  # the c the step applies
        lam = rayleigh(layout, M[None], state["fop_power_v"][None])
        delta = schedule(state["fop_hyper_step"], group["norm_delay"])
        c = float(target_scale(lam, delta, group["target_norm"]))
    g = state.get("fop_prev_grad")  # rows G^T; P is symmetric, so P G is G^T P as rows
    side, output = _side(layout, M, c), None
    pg = None if g is None else side.apply(g)
    if layout.outer is not None:  # P = P_out (x) P_in; the rows are G, P_out acts on columns
        out = _side(layout.outer, state["fop_M_out"], 1.0)
        pg = None if pg is None else out.apply(pg.T).T
        output = _diagnostics(f"{name}.P_out", layout.outer,
                              replace(out, shown=f"P_out ({out.shown} of the output side)"),
                              float("nan"), state)
        side = replace(side, shown=f"P_in ({side.shown} of the input side)",
                       eigs=(out.eigs[:, None] * side.eigs[None, :]).flatten(),
                       norm=side.norm * out.norm)  # ||A (x) B||_F = ||A||_F ||B||_F
    angle = float("nan")
    if g is not None:
        cos = float((g * pg).sum() / (g.norm() * pg.norm()))
        angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    return _diagnostics(name, layout, side, angle, state, output)


def _diagnostics(name: str, layout: Layout, side: _Side, angle: float, state: Mapping[str, Any],
                 output: PreconditionerDiagnostics | None = None) -> PreconditionerDiagnostics:
    return PreconditionerDiagnostics(
        name=name, shape=layout.shape, structure=layout.structure, frobenius_norm=side.norm,
        eig_min=float(side.eigs.min()), eig_max=float(side.eigs.max()), angle_deg=angle,
        nonfinite_skips=int(state.get("fop_nonfinite_skips", 0)),
        matrix=side.matrix.detach().cpu(), shown=side.shown,
        eigenvalues=side.eigs.sort(descending=True).values.cpu(), output=output,
    )


class _BaseState(dict):
    """The base optimizer's view of FOP's state: ``state[p]`` is ``fop.state[p]["base"]``."""

    def __init__(self, outer: dict) -> None:
        super().__init__()
        self.outer = outer

    def __getitem__(self, p: Tensor) -> dict:
        return self.outer[p].setdefault("base", {})


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"FOP: invalid {name}: {message}")
