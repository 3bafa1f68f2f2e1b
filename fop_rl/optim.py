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

Implementation notes: for the small layers of RL policies the number of torch calls sets the
cost, for wide layers the passes over memory. Tensors with the same structure and matrix shape
are stacked into buckets for the matrix products (``torch.bmm``, on views made once). A group's
buckets keep M, the hyper-optimizer's moments and the gradients in flat buffers, so elementwise
work is one call whatever the number of tensors: M learns by torch's fused Adam kernel; G_t and
G_{t-1} live in two buffers that swap roles each step instead of being copied; R_{t-1} M, made
when preconditioning G_{t-1}, is kept for the next hypergradient; M is stored as the rows of
M^T so that wide products read memory in order. Everything lives in ``self.state[p]`` (as
views into those buffers), so ``state_dict()``/``load_state_dict()`` carry it. The base
optimizer is a real torch optimizer sharing this optimizer's ``param_groups`` and keeping its
state inside ``self.state[p]``; an SGD base is stepped in one call of the kernel of
``torch.optim.SGD(fused=True)`` (bit for bit its update), any other base sees D in ``p.grad``
during its ``step()``.
"""

from __future__ import annotations

import inspect
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

    def unrows(self, r: Tensor) -> Tensor:
        """Rows (n x d) seen in the parameter's shape."""
        return r.t() if self.transpose else r.reshape(self.shape)

    @property
    def stores_transpose(self) -> bool:
        """Pools store a full or low-rank M (d x k) as the rows of M^T, so that the big matrix
        products read both R and M row by row."""
        return self.structure in ("full", "lowrank")

    def flat_m(self, m: Tensor) -> Tensor:
        """M, or a tensor shaped like it, in the order a pool stores it."""
        return m.mT.reshape(-1) if self.stores_transpose else m.reshape(-1)

    def view_m(self, stored: Tensor, shape: tuple[int, ...], batch: tuple[int, ...] = ()) -> Tensor:
        """The stored elements of ``flat_m`` seen in M's shape (with leading batch dimensions)."""
        if self.stores_transpose:
            return stored.view(*batch, shape[1], shape[0]).mT
        return stored.view(*batch, *shape)

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


class _Bucket:
    """Tensors of one pool with the same structure, n, d and rank: their math, batched.

    Every tensor here is a (B, ., .) view made once, when the pool is built, into buffers that
    persist across steps (a step then spends its time in the products, not in making views):
    ``M`` (d x k, stored as the rows of its transpose ``K``), the hypergradient ``H`` (stored as
    ``HT``), the preconditioned rows ``D``, and two slots, indexed by the pool's ``cur``, of the
    raw gradient rows ``R`` and of ``X = R M``: this step's and the previous step's, swapping
    roles every step. The previous step's ``X`` is exactly the ``R_prev M`` that this step's
    hypergradient needs, so it is kept rather than recomputed.
    """

    def __init__(self, params: list[Tensor], layouts: list[_Layout]):
        self.params, self.layouts = params, layouts

    @property
    def layout(self) -> _Layout:
        """The math reads structure, n, d and rank: the same for every tensor here."""
        return self.layouts[0]

    @property
    def size(self) -> int:
        return len(self.params)

    def bind(self, M: Tensor, H: Tensor, rows: list[Tensor], D: Tensor, normalize: bool) -> None:
        """Take this bucket's views of the pool's buffers."""
        self.M, self.H, self.R, self.D, self.normalize = M, H, rows, D, normalize
        if self.layout.stores_transpose:
            self.K, self.HT = M.mT, H.mT
            n, k = self.layout.n, M.shape[2]
            self.X = [M.new_empty(self.size, n, k) for _ in range(2)]
            self.XT = [X.mT for X in self.X]

    def _times_m(self, slot: int) -> Tensor:
        """X = R M for the rows in ``slot``, into that slot of X."""
        return torch.bmm(self.R[slot], self.M, out=self.X[slot])

    def refresh(self, prev: int) -> None:
        """Recompute X_prev = R_prev M, after M or R_prev changed outside a step."""
        if self.layout.stores_transpose:
            self._times_m(prev)

    def hypergradient(self, cur: int, eta: float) -> None:
        """H = dJ(theta_t)/dM for theta_t = theta_{t-1} - eta P(M) G_{t-1}, with G = R^T.

        Full and low rank: -eta (G G_{t-1}^T + G_{t-1} G^T) M = -eta (R^T X_prev + R_prev^T X)
        with X = R M: three products of n d k flops (no d x d one), made as H^T so that they
        read R by rows (twice as fast as by columns for a wide layer).
        """
        R, R_prev, prev = self.R[cur], self.R[1 - cur], 1 - cur
        structure = self.layout.structure
        if self.layout.stores_transpose:
            self._times_m(cur)
            torch.bmm(self.XT[prev], R, out=self.HT)
            self.HT.baddbmm_(self.XT[cur], R_prev, beta=-eta, alpha=-eta)
        elif structure == "scalar":  # M = m I: -2 eta m <G, G_prev>
            torch.mul((R * R_prev).sum((1, 2), keepdim=True), self.M, out=self.H).mul_(-2 * eta)
        else:  # diagonal: -2 eta m * G * G_prev
            torch.mul(R, R_prev, out=self.H).mul_(self.M).mul_(-2 * eta)
        if not self.normalize:
            return
        # FOP-norm, P~ = c P, c = d / tr(P): dJ/dM = c H + eta <G, P G_prev> (c / tr P) dtr(P)/dM
        lay, M = self.layout, self.M
        if lay.stores_transpose:  # <G, M M^T G_prev> = <X, X_prev>, plus <G, G_prev> for I + U U^T
            inner = (self.X[cur] * self.X[prev]).sum((1, 2), keepdim=True)
            if structure == "lowrank":
                inner += (R * R_prev).sum((1, 2), keepdim=True)
        else:
            inner = (R * R_prev * M.square()).sum((1, 2), keepdim=True)
        trace = _trace(lay, M)
        c = _numel(lay) / trace
        grad_trace = 2 * M * (_numel(lay) if structure == "scalar" else 1)
        self.H.mul_(c).add_(grad_trace * (eta * inner * c / trace))

    def precondition(self, cur: int) -> None:
        """D = P G (as rows: R M M^T, R + R U U^T, or R m^2), and X = R M for the next step."""
        R = self.R[cur]
        structure = self.layout.structure
        if structure == "full":
            torch.bmm(self._times_m(cur), self.K, out=self.D)
        elif structure == "lowrank":
            torch.baddbmm(R, self._times_m(cur), self.K, out=self.D)
        else:
            torch.mul(R, self.M.square(), out=self.D)
        if self.normalize:
            self.D.mul_(_numel(self.layout) / _trace(self.layout, self.M))


class _Pool:
    """The buckets of one param group that step together, with their state in flat buffers.

    Elementwise work (gathering gradients, the finiteness check, the hyper-optimizer, the base
    step) then costs one torch call per step whatever the number of tensors: for the small
    layers of RL policies the count of calls, not arithmetic, is what costs. ``optimizer.state[p]``
    holds views into the buffers, so ``state_dict()`` sees live values.

    ``fused`` pools (base: torch SGD) step it themselves in one call of its fused kernel, with D
    as the gradient, and keep its ``momentum_buffer`` in the state as torch SGD does.
    """

    def __init__(self, states: dict, buckets: list[_Bucket], group: dict, fused: bool):
        self.buckets, self.group, self.fused = buckets, group, fused
        self.params = [p for b in buckets for p in b.params]
        self.states = [states[p] for p in self.params]
        self.layouts = [lay for b in buckets for lay in b.layouts]
        self.hyper_step: int = self.states[0]["fop_hyper_step"]  # equal in a pool: in its key
        self.step_count = torch.tensor(float(self.hyper_step), device=self.params[0].device)
        self.M = self._flatten("fop_M")
        self.exp_avg = self._flatten("fop_hyper_exp_avg")
        self.exp_avg_sq = self._flatten("fop_hyper_exp_avg_sq")
        m_shapes = [s["fop_M"].shape for s in self.states]
        row_shapes = [(lay.n, lay.d) for lay in self.layouts]
        numel, h = sum(lay.n * lay.d for lay in self.layouts), self.M.numel()
        # One buffer [rows 0 | H | rows 1]: rows[cur] holds this step's gradient rows, rows[1 -
        # cur] the previous step's; this step's rows and H are one piece, checked in one call.
        self.buffer = self.M.new_zeros(2 * numel + h)
        self.rows = [self.buffer[:numel], self.buffer[numel + h :]]
        self.H = self.buffer[numel : numel + h]
        self.checked = [self.buffer[: numel + h], self.buffer[numel:]]
        self.cur = 0
        self.row_views = [_split(r, row_shapes) for r in self.rows]
        # the same slots seen in the parameters' shapes: gradients are copied in with one call
        self.grad_slots = [[lay.unrows(v) for lay, v in zip(self.layouts, views, strict=True)]
                           for views in self.row_views]
        self.D = self.M.new_empty(numel)
        self.D_params = [lay.unrows(v) for lay, v in zip(self.layouts, _split(self.D, row_shapes),
                                                         strict=True)]
        self.transposed = any(lay.transpose for lay in self.layouts)
        for b, M, H, R0, R1, D in zip(buckets, self._by_bucket(self.M, m_shapes, like_m=True),
                                      self._by_bucket(self.H, m_shapes, like_m=True),
                                      self._by_bucket(self.rows[0], row_shapes),
                                      self._by_bucket(self.rows[1], row_shapes),
                                      self._by_bucket(self.D, row_shapes), strict=True):
            b.bind(M, H, [R0, R1], D, group["normalize"])
        self.started = "fop_prev_grad" in self.states[0]  # equal in a pool: in its key
        if self.started:
            torch.cat([s["fop_prev_grad"].reshape(-1) for s in self.states], out=self.rows[1])
            self._point_prev_grad()
        # versions of M and the buffer when the last step ended: X_prev = R_prev M is valid
        # while they have not changed
        self.cache_key: tuple[int, int] | None = None
        self.fresh = False
        # the base's momentum buffers (torch SGD's state), once the first step made them
        self.velocity: list[Tensor] | None = None
        if all("momentum_buffer" in s.get("base", {}) for s in self.states):
            self.velocity = [s["base"]["momentum_buffer"] for s in self.states]

    def _flatten(self, key: str) -> Tensor:
        """One flat buffer for ``state[key]`` (shaped like M) of every tensor, which becomes
        views of it."""
        flat = torch.cat([lay.flat_m(s[key]) for s, lay in zip(self.states, self.layouts,
                                                                strict=True)])
        pieces = flat.split([s[key].numel() for s in self.states])
        for s, lay, piece in zip(self.states, self.layouts, pieces, strict=True):
            s[key] = lay.view_m(piece, s[key].shape)
        return flat

    def _by_bucket(self, flat: Tensor, shapes: list, like_m: bool = False) -> list[Tensor]:
        """Each bucket's part of a flat buffer laid out tensor after tensor, as (B, ., .)."""
        out, offset, first = [], 0, 0
        for b in self.buckets:
            shape = shapes[first]
            size = b.size * math.prod(shape)
            piece = flat[offset : offset + size]
            out.append(b.layout.view_m(piece, shape, (b.size,)) if like_m
                       else piece.view(b.size, *shape))
            offset += size
            first += b.size
        return out

    def _point_prev_grad(self) -> None:
        for s, view in zip(self.states, self.row_views[1 - self.cur], strict=True):
            s["fop_prev_grad"] = view

    def gather(self) -> None:
        """This step's raw gradients as rows, into one flat buffer (one copy)."""
        self.fresh = self.cache_key == (self.M._version, self.buffer._version)
        torch._foreach_copy_(self.grad_slots[self.cur], [p.grad for p in self.params])

    def hypergradients(self) -> Tensor | None:
        """All buckets' hypergradients, flat like M, or None before the first previous step."""
        if not self.started:
            return None
        if not self.fresh:  # a new pool, or M or G_prev edited since the last step
            for b in self.buckets:
                b.refresh(1 - self.cur)
        eta = self.states[0]["fop_prev_lr"]
        for b in self.buckets:
            b.hypergradient(self.cur, eta)
        return self.H

    def learn(self, H: Tensor) -> None:
        """One hyper-optimizer step on every M of the pool: torch's Adam, or SGD."""
        hyper_lr = self.group["hyper_lr"]
        if self.group["hyper_optimizer"] == "sgd":
            self.M.add_(H, alpha=-hyper_lr)
            return
        self.hyper_step += 1
        for s in self.states:
            s["fop_hyper_step"] = self.hyper_step
        self.step_count.add_(1)
        # the kernel of torch.optim.Adam(fused=True): one call for the whole pool
        torch._fused_adam_([self.M], [H], [self.exp_avg], [self.exp_avg_sq], [],
                           [self.step_count], lr=hyper_lr, beta1=_HYPER_BETAS[0],
                           beta2=_HYPER_BETAS[1], weight_decay=0.0, eps=_HYPER_EPS,
                           amsgrad=False, maximize=False)

    def precondition(self) -> None:
        """D = P G for every tensor, into the flat D buffer; keep R M for the next step."""
        for b in self.buckets:
            b.precondition(self.cur)

    def base_step(self) -> None:
        """torch.optim.SGD's update with D as gradient (v <- mu v + D; p <- p - lr v with its
        other options), in one call of the kernel of torch.optim.SGD(fused=True)."""
        g = self.group
        first = g["momentum"] != 0 and self.velocity is None
        if first:  # the kernel fills the buffers on the first step
            self.velocity = [torch.empty_like(p) for p in self.params]
            for s, v in zip(self.states, self.velocity, strict=True):
                s.setdefault("base", {})["momentum_buffer"] = v
        # the kernel walks every tensor in memory order: D must be laid out like p
        grads = [D.contiguous() for D in self.D_params] if self.transposed else self.D_params
        torch._fused_sgd_(self.params, grads, self.velocity or [],
                          weight_decay=g["weight_decay"], momentum=g["momentum"], lr=g["lr"],
                          dampening=g["dampening"], nesterov=g["nesterov"],
                          maximize=g["maximize"], is_first_step=first)

    def remember(self) -> None:
        """This step's gradients become the previous ones (the buffers swap), with their lr."""
        self.cur = 1 - self.cur
        self.started = True
        self._point_prev_grad()
        self.cache_key = (self.M._version, self.buffer._version)
        lr = self.group["lr"]
        for s in self.states:
            s["fop_prev_lr"] = lr


def _split(flat: Tensor, shapes: list) -> list[Tensor]:
    """Views of consecutive pieces of ``flat`` with the given shapes."""
    sizes = [math.prod(shape) for shape in shapes]
    return [piece.view(shape) for piece, shape in zip(flat.split(sizes), shapes, strict=True)]


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

    def _fuses_base(self, group: Mapping[str, Any]) -> bool:
        """Whether the pools of ``group`` step the base themselves: torch SGD, not
        differentiable (its fused kernel does the rest of its options)."""
        return type(self._base) is torch.optim.SGD and not group["differentiable"]

    def _prepare(self) -> tuple[list[_Pool], list[Tensor]]:
        """Pools of the preconditioned tensors that have a gradient, and the other tensors.

        Rebuilt only when the set of tensors with a gradient changes, or whether the base can
        be fused (``load_state_dict`` and ``add_param_group`` start afresh).
        """
        fused = [self._fuses_base(group) for group in self.param_groups]
        key = (*fused, *(p.grad is not None for group in self.param_groups
                         for p in group["params"]))
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
                if p.grad.is_sparse:
                    raise ValueError("FOP needs dense gradients: a parameter has a sparse one "
                                     "(for nn.Embedding, use sparse=False)")
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
                bucket = buckets.setdefault((pool, shape), _Bucket([], []))
                bucket.params.append(p)
                bucket.layouts.append(layout)
        pools: dict[tuple, list[_Bucket]] = {}
        for (pool, _), bucket in buckets.items():
            pools.setdefault(pool, []).append(bucket)
        self._pools = [_Pool(self.state, bs, self.param_groups[pool[0]], fused[pool[0]])
                       for pool, bs in pools.items()]
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

    def _step_base(self, pools: list[_Pool], plain: list[Tensor]) -> None:
        """The base optimizer's step with D as gradient: fused pools do their own, torch the rest
        (p.grad holds D meanwhile, then the raw gradient again)."""
        for pool in pools:
            if pool.fused:
                pool.base_step()
        if not plain and all(pool.fused for pool in pools):
            return
        raw = [(p, p.grad) for pool in pools for p in pool.params]
        for pool in pools:
            for p, D in zip(pool.params, pool.D_params, strict=True):
                p.grad = None if pool.fused else D
        try:
            self._base.step()
        finally:
            for p, g in raw:
                p.grad = g

    def _all_finite(self, pools: list[_Pool], hypergrads: list[Tensor | None],
                    plain: list[Tensor]) -> bool:
        """True when every gradient and hypergradient is finite; else count offenders.

        A sum is non-finite when an entry is, or when it overflows: only gradients far too
        large to use can do that.
        """
        sums = [pool.checked[pool.cur].sum() for pool in pools] + [p.grad.sum() for p in plain]
        if math.isfinite(sum(float(s) for s in sums)):
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
        g = state["fop_prev_grad"]  # rows G^T; P is symmetric, so P G is G^T P as rows
        pg = g @ matrix if layout.structure in ("full", "lowrank") else g * diagonal
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
