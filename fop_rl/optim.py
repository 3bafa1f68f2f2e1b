r"""First-Order Preconditioning (FOP) as a drop-in torch optimizer.

FOP (Moskovitz et al., "First-Order Preconditioning via Hypergradient Descent") learns, per
parameter tensor, a preconditioner :math:`P = M M^\top` for the gradient, online, from the
hypergradient of the loss after a step with respect to the matrix that made that step.

Matrix view
    Each parameter's gradient is seen as a matrix :math:`G` of shape :math:`d \times n`:
    1-D tensors (biases, ``log_std``) as :math:`(d, 1)`; Linear weights ``(out, in)`` as
    :math:`g^\top` (``side="input"``, :math:`d` = in, one matrix shared by all output units) or
    :math:`g` (``side="output"``, :math:`d` = out); conv weights ``(O, I, kh, kw)`` spatially as
    :math:`(kh\,kw) \times (O\,I)` (paper section 2.2). Other tensors are not preconditioned.

Update, at each ``step()`` with the group's learning rate :math:`\eta_t` and the raw gradient
:math:`G_{t-1}` stored by the previous step (made with learning rate :math:`\eta_{t-1}`):

.. math::
    H_t &= \frac{\partial J(\theta_t)}{\partial M}
        \quad\text{for}\quad \theta_t = \theta_{t-1} - \eta_{t-1} M M^\top G_{t-1}
        \;=\; -\eta_{t-1} \left(G_t G_{t-1}^\top + G_{t-1} G_t^\top\right) M \\
    M &\leftarrow \mathrm{HyperOpt}(M, H_t)
        \qquad \text{Adam (torch defaults, lr = hyper\_lr) or SGD: } M - \text{hyper\_lr}\,H_t \\
    D_t &= M M^\top G_t \\
    \theta_{t+1} &= \mathrm{Base}(\theta_t, D_t)
        \qquad \text{SGD-momentum: } v \leftarrow \mu v + D_t,\; \theta \leftarrow \theta - \eta_t v

The hypergradient is the same whatever the base optimizer (the paper's online approximation:
no backpropagation through the velocity), it is skipped on the first step (no :math:`G_{t-1}`),
and ``p.grad`` holds the caller's raw gradient again when ``step()`` returns.

Structures of :math:`M`, each with the exact hypergradient of its own parameters:

* ``full`` (FOP): dense :math:`d \times d` :math:`M = I` at start. Tensors with
  :math:`d >` ``max_full_dim`` (default 128: cost grows like :math:`d` flops per parameter)
  switch to ``lowrank``.
* ``lowrank`` (paper appendix A.4): :math:`P = I + U U^\top` with :math:`U \in
  \mathbb{R}^{d\times r}` (``rank``, default 8), so :math:`H_U = -\eta (G G_{t-1}^\top + G_{t-1}
  G^\top) U`. :math:`U` starts at i.i.d. :math:`\mathcal N(0, 0.01/d)` entries (columns of norm
  about 0.1, drawn from a generator seeded by the tensor's index, so the global RNG is left
  alone): :math:`P_0` is within about 1% of :math:`I` and the hypergradient, linear in
  :math:`U`, is not stuck at zero.
* ``scalar`` (S-HD, Baydin et al. 2017): :math:`M = m I`, :math:`P = m^2 I`,
  :math:`H_m = -2\eta\, m \langle G, G_{t-1}\rangle`.
* ``diagonal`` (PP-HD): :math:`M = \mathrm{diag}(m)` over all elements, :math:`P = m^2`
  elementwise, :math:`H_m = -2\eta\, m \odot G \odot G_{t-1}`.

``normalize=True`` (FOP-norm, paper appendix A.2) uses :math:`\tilde P = c P` with
:math:`c = d / \mathrm{tr}(P)`, so :math:`\mathrm{tr}(\tilde P) = d`, the trace of the identity
(for ``diagonal``, :math:`d` is the number of elements): the learned matrix rotates and reshapes
the step without changing its overall scale. Its hypergradient differentiates through
:math:`c`: :math:`\tilde H = c H + \eta\,\langle G, P G_{t-1}\rangle \frac{c}{\mathrm{tr} P}
\nabla \mathrm{tr}(P)`.

A step whose gradient or hypergradient is not finite is skipped entirely, as torch's
GradScaler does, and counted per tensor (``diagnostics()``).

Implementation notes: for the small layers of RL policies the number of torch calls, not the
arithmetic, sets the cost. Tensors with the same structure and matrix shape are stacked into
buckets for the matrix products (``torch.bmm``); a group's buckets keep M, the hyper-optimizer's
moments and G_{t-1} in flat buffers, so the elementwise work is a few calls per step whatever
the number of tensors. Everything lives in ``self.state[p]`` (as views into those buffers), so
``state_dict()``/``load_state_dict()`` carry it. The base optimizer is a real torch optimizer
sharing this optimizer's ``param_groups`` and keeping its state inside ``self.state[p]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

STRUCTURES = ("full", "lowrank", "scalar", "diagonal")
SIDES = ("input", "output")
HYPER_OPTIMIZERS = ("adam", "sgd")
BASES: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}

_HYPER_BETAS = (0.9, 0.999)  # torch.optim.Adam defaults
_HYPER_EPS = 1e-8
_DEFAULT_RANK = 8
_LOWRANK_INIT_NORM = 0.1


@dataclass(frozen=True)
class _Layout:
    """How one parameter's gradient maps to the rows ``R = G^T`` (n x d) that FOP works on.

    Rows are the natural layout of weights (a Linear weight (out, in) is already G^T on the
    input side), so most views need no transpose.
    """

    structure: str
    shape: tuple[int, ...]
    transpose: bool  # True only for Linear weights preconditioned on the output side
    n: int
    d: int
    rank: int

    def rows(self, t: Tensor) -> Tensor:
        return t.t() if self.transpose else t.reshape(self.n, self.d)

    def unrows(self, r: Tensor) -> Tensor:
        return r.t() if self.transpose else r.reshape(self.shape)

    def init_param(self, like: Tensor, seed: int) -> Tensor:
        """The structure's parameter at the start: M = I, U small random, m = 1."""
        if self.structure == "full":
            return torch.eye(self.d, dtype=like.dtype, device=like.device)
        if self.structure == "lowrank":
            gen = torch.Generator().manual_seed(seed)
            u = torch.randn(self.d, self.rank, generator=gen, dtype=torch.float64)
            return (u * (_LOWRANK_INIT_NORM / math.sqrt(self.d))).to(like)
        if self.structure == "scalar":
            return torch.ones(1, 1, dtype=like.dtype, device=like.device)
        return torch.ones(self.n, self.d, dtype=like.dtype, device=like.device)


def _layout(p: Tensor, group: Mapping[str, Any]) -> _Layout | None:
    shape = tuple(p.shape)
    transpose = False
    if p.dim() == 1:
        n, d = 1, shape[0]
    elif p.dim() == 2:
        n, d = shape
        if group["side"] == "output":
            n, d, transpose = d, n, True
    elif p.dim() == 4:
        n, d = shape[0] * shape[1], shape[2] * shape[3]
    else:
        return None
    structure, rank = group["structure"], group["rank"]
    if structure == "full" and (rank is not None or d > group["max_full_dim"]):
        structure = "lowrank"
    if structure == "lowrank":
        rank = min(rank or _DEFAULT_RANK, d)
    return _Layout(structure, shape, transpose, n, d, rank or 0)


def _numel(layout: _Layout) -> int:
    """The d of FOP-norm's trace target: rows of P for matrices, elements for diagonal P."""
    return layout.d if layout.structure in ("full", "lowrank") else layout.n * layout.d


def _trace(layout: _Layout, M: Tensor) -> Tensor:
    """tr(P) for each stacked structure parameter, shape (B, 1, 1)."""
    sq = M.square().sum((1, 2), keepdim=True)
    if layout.structure == "lowrank":
        return sq + layout.d
    return sq * _numel(layout) if layout.structure == "scalar" else sq


def _precondition(layout: _Layout, normalize: bool, M: Tensor, R: Tensor) -> Tensor:
    """Rows of D = P G, for rows R = G^T stacked as (B, n, d)."""
    if layout.structure == "full":
        D = torch.bmm(torch.bmm(R, M), M.mT)
    elif layout.structure == "lowrank":
        D = torch.baddbmm(R, torch.bmm(R, M), M.mT)
    else:
        D = R * M.square()
    return D.mul_(_numel(layout) / _trace(layout, M)) if normalize else D


def _hypergradient(layout: _Layout, normalize: bool, M: Tensor, R: Tensor, R_prev: Tensor,
                   eta: float) -> Tensor:
    """dJ(theta_t)/dM for theta_t = theta_{t-1} - eta P(M) G_{t-1}, G = R^T, G_{t-1} = R_prev^T."""
    s = layout.structure
    n, d = R.shape[1], R.shape[2]
    if s == "full" and n >= d // 2:  # fewest flops: d^2 n + d^3
        A = torch.bmm(R.mT, R_prev)  # G G_prev^T, from rows
        H = torch.baddbmm(M, A + A.mT, M, beta=0, alpha=-eta)  # beta=0: only -eta (A+A^T) M
    elif s in ("full", "lowrank"):  # 4 n d k flops, no d x d product: R^T (R_prev M) + ...
        H = torch.bmm(R.mT, torch.bmm(R_prev, M))
        H.baddbmm_(R_prev.mT, torch.bmm(R, M)).mul_(-eta)
    elif s == "scalar":
        H = (R * R_prev).sum((1, 2), keepdim=True).mul_(M).mul_(-2 * eta)
    else:
        H = (R * R_prev).mul_(M).mul_(-2 * eta)
    if not normalize:
        return H
    # P~ = c P with c = d / tr(P): dJ/dM = c H + eta <G, P G_prev> (c / tr P) d tr(P)/dM
    trace = _trace(layout, M)
    c = _numel(layout) / trace
    inner = (R * _precondition(layout, False, M, R_prev)).sum((1, 2), keepdim=True)
    grad_trace = 2 * M * (_numel(layout) if s == "scalar" else 1)
    return H.mul_(c).add_(grad_trace * (eta * inner * c / trace))


class _Bucket:
    """Tensors of one group with the same structure, n, d and rank: their matrix math batched.

    ``M`` and ``prev_grad`` are (B, ., .) views into the flat buffers of the bucket's pool.
    """

    def __init__(self, params: list[Tensor], layouts: list[_Layout], group: dict):
        self.params, self.layouts, self.group = params, layouts, group
        self.M: Tensor
        self.prev_grad: Tensor | None = None

    @property
    def layout(self) -> _Layout:
        """The math reads structure, n, d and rank: the same for every tensor here."""
        return self.layouts[0]

    def rows(self, out: Tensor) -> Tensor:
        """The raw gradients as stacked rows R = G^T, shape (B, n, d), written into ``out``."""
        return torch.stack([lay.rows(p.grad) for p, lay in zip(self.params, self.layouts,
                                                               strict=True)], out=out)

    def hypergradient(self, R: Tensor, eta: float) -> Tensor:
        return _hypergradient(self.layout, self.group["normalize"], self.M, R, self.prev_grad, eta)

    def precondition(self, R: Tensor) -> None:
        """Set each tensor's .grad to its preconditioned gradient D = P G."""
        D = _precondition(self.layout, self.group["normalize"], self.M, R)
        for p, lay, d in zip(self.params, self.layouts, D.unbind(0), strict=True):
            p.grad = lay.unrows(d)


class _Pool:
    """The buckets of one param group that step together, with their FOP state in flat buffers.

    Elementwise work (the hyper-optimizer, the finiteness check) then costs a few torch calls
    per step whatever the number of tensors: for the small layers of RL policies the count of
    calls, not arithmetic, is what costs. ``optimizer.state[p]`` holds views into the buffers,
    so ``state_dict()`` sees live values.
    """

    def __init__(self, states: dict, buckets: list[_Bucket]):
        self.buckets, self.group = buckets, buckets[0].group
        self.params = [p for b in buckets for p in b.params]
        self.states = [states[p] for p in self.params]
        self.layouts = [lay for b in buckets for lay in b.layouts]
        self.hyper_step: int = self.states[0]["fop_hyper_step"]  # equal in a pool: in its key
        self.M = self._flatten("fop_M")
        self.exp_avg = self._flatten("fop_hyper_exp_avg")
        self.exp_avg_sq = self._flatten("fop_hyper_exp_avg_sq")
        offset = first = 0
        for b in buckets:  # each bucket's M: a (B, ., .) view of the flat buffer
            shape = self.states[first]["fop_M"].shape
            size = len(b.params) * shape.numel()
            b.M = self.M[offset : offset + size].view(len(b.params), *shape)
            offset += size
            first += len(b.params)
        self.bucket_grad_numel = [len(b.params) * b.layout.n * b.layout.d for b in buckets]
        self.prev_grad: Tensor | None = None
        if "fop_prev_grad" in self.states[0]:
            self._keep(torch.cat([s["fop_prev_grad"].reshape(-1) for s in self.states]))
        self.spare = self.M.new_empty(sum(self.bucket_grad_numel))

    def _flatten(self, key: str) -> Tensor:
        flat = torch.cat([s[key].reshape(-1) for s in self.states])
        offset = 0
        for s in self.states:
            size = s[key].numel()
            s[key] = flat[offset : offset + size].view(s[key].shape)
            offset += size
        return flat

    def _keep(self, flat_rows: Tensor) -> None:
        """Make ``flat_rows`` the previous gradient, with views for the buckets and the state."""
        self.prev_grad = flat_rows
        offset = 0
        for s, lay in zip(self.states, self.layouts, strict=True):
            s["fop_prev_grad"] = flat_rows[offset : offset + lay.n * lay.d].view(lay.n, lay.d)
            offset += lay.n * lay.d
        for b, R in zip(self.buckets, self.split(flat_rows), strict=True):
            b.prev_grad = R

    def split(self, flat_rows: Tensor) -> list[Tensor]:
        """Each bucket's part of a flat rows buffer, as (B, n, d)."""
        return [R.view(len(b.params), b.layout.n, b.layout.d)
                for b, R in zip(self.buckets, flat_rows.split(self.bucket_grad_numel),
                                strict=True)]

    def rows(self) -> tuple[Tensor, list[Tensor]]:
        """This step's raw gradient rows, stacked into the spare buffer: (flat, per bucket)."""
        per_bucket = self.split(self.spare)
        for b, out in zip(self.buckets, per_bucket, strict=True):
            b.rows(out)
        return self.spare, per_bucket

    def hypergradients(self, rows: list[Tensor]) -> Tensor | None:
        """All buckets' hypergradients, flat, or None before the first previous gradient."""
        if self.prev_grad is None:
            return None
        eta = self.states[0]["fop_prev_lr"]
        return torch.cat([b.hypergradient(R, eta).reshape(-1)
                          for b, R in zip(self.buckets, rows, strict=True)])

    def learn(self, H: Tensor) -> None:
        """One hyper-optimizer step on every M of the pool (torch.optim.Adam's update)."""
        hyper_lr = self.group["hyper_lr"]
        if self.group["hyper_optimizer"] == "sgd":
            self.M.add_(H, alpha=-hyper_lr)
            return
        beta1, beta2 = _HYPER_BETAS
        self.hyper_step += 1
        for s in self.states:
            s["fop_hyper_step"] = self.hyper_step
        self.exp_avg.lerp_(H, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(H, H, value=1 - beta2)
        denom = self.exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**self.hyper_step)).add_(_HYPER_EPS)
        self.M.addcdiv_(self.exp_avg, denom, value=-hyper_lr / (1 - beta1**self.hyper_step))

    def remember(self, flat_rows: Tensor) -> None:
        """Keep this step's rows and learning rate for the next step."""
        if self.prev_grad is None:
            self._keep(flat_rows)
            self.spare = flat_rows.new_empty(flat_rows.shape)
        else:  # one copy: cheaper than re-pointing every view at a swapped buffer
            self.prev_grad.copy_(flat_rows)
        for s in self.states:
            s["fop_prev_lr"] = self.group["lr"]


class FOP(torch.optim.Optimizer):
    r"""First-Order Preconditioning around a standard torch optimizer (see the module docstring).

    Args:
        params: tensors or param-group dicts, as for any torch optimizer (named parameters too).
        lr: learning rate :math:`\eta` of the base optimizer, also used by the hypergradient.
        momentum: momentum :math:`\mu` of the SGD base (ignored by other bases).
        hyper_lr: learning rate of the hyper-optimizer that learns :math:`M`.
        hyper_optimizer: ``"adam"`` (torch's defaults otherwise) or ``"sgd"``.
        structure: ``"full"``, ``"lowrank"``, ``"scalar"`` (S-HD) or ``"diagonal"`` (PP-HD).
        side: ``"input"`` or ``"output"``: which side of Linear weights is preconditioned.
        rank: rank of ``lowrank``; given with ``structure="full"``, asks for low rank everywhere.
        max_full_dim: ``full`` tensors with a larger :math:`d` use ``lowrank`` instead.
        normalize: FOP-norm: rescale :math:`P` to trace :math:`d`.
        base: ``"sgd"``, ``"adam"`` or a torch optimizer class, stepped with :math:`D` as gradient.
        base_kwargs: extra keyword arguments for the base optimizer (betas, eps, nesterov...).
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
        base: str | type[torch.optim.Optimizer] = "sgd",
        base_kwargs: Mapping[str, Any] | None = None,
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
        if isinstance(base, str):
            _check(base in BASES, "base", f"must be one of {tuple(BASES)} or a torch optimizer "
                   f"class, got {base!r}")
            base_cls = BASES[base]
        else:
            _check(isinstance(base, type) and issubclass(base, torch.optim.Optimizer), "base",
                   f"must be one of {tuple(BASES)} or a torch optimizer class, got {base!r}")
            base_cls = base
        params = list(params)
        extra = dict(base_kwargs or {})
        if base_cls is torch.optim.SGD:
            extra.setdefault("momentum", momentum)
        self._base = base_cls(params, lr=lr, **extra)
        defaults = dict(self._base.defaults, lr=lr, momentum=momentum, hyper_lr=hyper_lr,
                        hyper_optimizer=hyper_optimizer, structure=structure, side=side,
                        rank=rank, max_full_dim=max_full_dim, normalize=normalize)
        super().__init__(params, defaults)
        self._link_base()

    def _link_base(self) -> None:
        # The base optimizer shares our param groups, and keeps its state inside ours (under
        # "base": torch optimizers initialise a parameter's state when they find it empty), so
        # torch's state_dict() saves everything (SB3 keeps only the optimizer's state_dict).
        self._base.state = _BaseState(self.state)
        self._base.param_groups = self.param_groups
        self._pools: list[_Pool] = []
        self._plain: list[Tensor] = []
        self._pool_key: tuple = ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._link_base()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "_base"):
            for key, value in self._base.defaults.items():
                self.param_groups[-1].setdefault(key, value)
            self._link_base()

    # --- state -------------------------------------------------------------------------------

    def _init_state(self, p: Tensor, layout: _Layout, index: int) -> None:
        M = layout.init_param(p, seed=index)
        self.state[p].update(
            fop_M=M,
            fop_hyper_exp_avg=torch.zeros_like(M),
            fop_hyper_exp_avg_sq=torch.zeros_like(M),
            fop_hyper_step=0,
            fop_nonfinite_skips=0,
        )

    def _prepare(self) -> tuple[list[_Pool], list[Tensor]]:
        """Pools of the preconditioned tensors that have a gradient, and the other tensors.

        Rebuilt only when the set of tensors with a gradient, or with a previous one, changes.
        """
        key = tuple((id(p), "fop_prev_grad" in self.state[p])
                    for group in self.param_groups for p in group["params"] if p.grad is not None)
        if key == self._pool_key:
            return self._pools, self._plain
        self._plain = []
        buckets: dict[tuple, _Bucket] = {}
        index = 0
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                index += 1
                layout = _layout(p, group)
                if p.grad is None:
                    continue
                if layout is None:
                    self._plain.append(p)
                    continue
                state = self.state[p]
                if "fop_M" not in state:
                    self._init_state(p, layout, index)
                # A pool steps together: same group, dtype, device, hyper-step count, and
                # whether a previous gradient exists (none: no hypergradient yet).
                pool = (gi, p.dtype, p.device, "fop_prev_grad" in state, state["fop_hyper_step"])
                shape = (layout.structure, layout.n, layout.d, layout.rank)
                bucket = buckets.setdefault((pool, shape), _Bucket([], [], group))
                bucket.params.append(p)
                bucket.layouts.append(layout)
        pools: dict[tuple, list[_Bucket]] = {}
        for (pool, _), bucket in buckets.items():
            pools.setdefault(pool, []).append(bucket)
        self._pools = [_Pool(self.state, bs) for bs in pools.values()]
        self._pool_key = key
        return self._pools, self._plain

    # --- the step ----------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Learn M from the hypergradient, precondition the gradients, step the base optimizer."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pools, plain = self._prepare()
        stacked = [pool.rows() for pool in pools]
        flat_rows = [flat for flat, _ in stacked]
        rows = [per_bucket for _, per_bucket in stacked]
        hypergrads = [pool.hypergradients(rs) for pool, rs in zip(pools, rows, strict=True)]
        if not self._all_finite(pools, flat_rows, hypergrads, plain):
            return loss
        for pool, H in zip(pools, hypergrads, strict=True):
            if H is not None:
                pool.learn(H)
        raw = [(p, p.grad) for pool in pools for p in pool.params]
        for pool, rs in zip(pools, rows, strict=True):
            for b, R in zip(pool.buckets, rs, strict=True):
                b.precondition(R)
        try:
            self._base.step()
        finally:
            for p, g in raw:
                p.grad = g
        for pool, R in zip(pools, flat_rows, strict=True):
            pool.remember(R)
        return loss

    def _all_finite(self, pools: list[_Pool], rows: list[Tensor],
                    hypergrads: list[Tensor | None], plain: list[Tensor]) -> bool:
        """True when every gradient and hypergradient is finite (one sync); else count offenders.

        A sum is non-finite when an entry is, or when it overflows: only gradients far too
        large to use can do that.
        """
        sums = [t.sum() for t in rows + hypergrads + [p.grad for p in plain] if t is not None]
        if not sums or bool(torch.stack(sums).isfinite().all()):
            return True
        for pool, H in zip(pools, hypergrads, strict=True):
            offset = 0  # H is laid out like the flat M: tensor after tensor
            for p, state in zip(pool.params, pool.states, strict=True):
                size = state["fop_M"].numel()
                bad = not p.grad.isfinite().all()
                if H is not None:
                    bad = bad or not H[offset : offset + size].isfinite().all()
                state["fop_nonfinite_skips"] += int(bad)
                offset += size
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
                layout = _layout(p, group)
                if layout is None or "fop_M" not in state:
                    continue
                name = by_id.get(id(p)) or (group_names[i] if group_names else f"param{index - 1}")
                out.append(_describe(name, layout, group, state))
        return out


@dataclass
class PreconditionerDiagnostics:
    """What FOP learned for one tensor.

    ``matrix`` is P (d x d) for ``full`` and ``lowrank``; for ``scalar`` and ``diagonal``, whose
    P is diagonal, it is P's diagonal in the parameter's shape. ``angle_deg`` is the angle between
    the last raw gradient and its preconditioned version (paper appendix figure A.1).
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


def _describe(name: str, layout: _Layout, group: Mapping[str, Any],
              state: Mapping[str, Any]) -> PreconditionerDiagnostics:
    normalize, M = group["normalize"], state["fop_M"]
    c = float(_numel(layout) / _trace(layout, M[None])) if normalize else 1.0
    if layout.structure == "full":
        matrix = c * (M @ M.T)
        eigs = torch.linalg.eigvalsh(matrix.double())
    elif layout.structure == "lowrank":
        matrix = c * torch.eye(layout.d, dtype=M.dtype, device=M.device).addmm_(M, M.T)
        # eig(I + U U^T) = 1 + eig(U^T U), and 1 on the rest of the space
        eigs = c * (1 + torch.linalg.eigvalsh((M.T @ M).double()))
        if layout.rank < layout.d:
            eigs = torch.cat([eigs, eigs.new_full((1,), c)])
    else:
        diagonal = (c * M.square()).expand(layout.n, layout.d)
        matrix = layout.unrows(diagonal).clone()
        eigs = diagonal.flatten().double()
    angle = float("nan")
    if "fop_prev_grad" in state:
        g = state["fop_prev_grad"][None]
        pg = _precondition(layout, normalize, M[None], g)
        cos = float((g * pg).sum() / (g.norm() * pg.norm()))
        angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    return PreconditionerDiagnostics(
        name=name, shape=layout.shape, structure=layout.structure,
        frobenius_norm=float(matrix.norm()),  # for diagonal P, the norm of its diagonal
        eig_min=float(eigs.min()), eig_max=float(eigs.max()), angle_deg=angle,
        nonfinite_skips=int(state.get("fop_nonfinite_skips", 0)), matrix=matrix.detach().cpu(),
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
