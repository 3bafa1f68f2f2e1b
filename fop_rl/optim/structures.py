"""FOP's structures of M and how a parameter's gradient maps to the rows they act on."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

STRUCTURES = ("full", "lowrank", "scalar", "diagonal", "none")
SIDES = ("input", "output", "flat", "both")
_DEFAULT_RANK = 8
_LOWRANK_INIT_NORM = 0.1


@dataclass(frozen=True)
class Layout:
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
    # Kronecker FOP (side="both"), on Linear weights: the output side's factor, whose rows are
    # the gradient's columns (n = in, d = out). This layout is then the input side's.
    outer: Layout | None = None

    def factors(self) -> list[tuple[str, Layout]]:
        """(suffix of its state keys, layout) of each learned factor: ``fop_M`` for the only (or
        the input side's) factor, ``fop_M_out`` for the output side's of Kronecker FOP."""
        return [("", self)] + ([("_out", self.outer)] if self.outer is not None else [])

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


def layout_of(p: Tensor, group: Mapping[str, Any]) -> Layout | None:
    if group["structure"] == "none":  # a param group the base optimizer steps alone
        return None
    shape = tuple(p.shape)
    transpose = False
    if group["side"] == "flat" and p.dim() >= 1:  # P acts on the whole flattened tensor
        n, d = 1, p.numel()
    elif p.dim() == 1:
        n, d = 1, shape[0]
    elif p.dim() == 2:
        n, d = shape
        if group["side"] == "output":
            n, d, transpose = d, n, True
        elif group["side"] == "both":
            return _layout(group, shape, False, n, d, outer=_layout(group, shape, True, d, n))
    elif p.dim() == 4:
        n, d = shape[0] * shape[1], shape[2] * shape[3]
    else:
        return None
    return _layout(group, shape, transpose, n, d)


def _layout(group: Mapping[str, Any], shape: tuple[int, ...], transpose: bool, n: int, d: int,
            outer: Layout | None = None) -> Layout:
    """The group's structure for a P that is d x d: low rank where full would be too wide."""
    structure, rank = group["structure"], group["rank"]
    if structure == "full" and (rank is not None or d > group["max_full_dim"]):
        structure = "lowrank"
    if structure == "lowrank":
        rank = min(rank or _DEFAULT_RANK, d)
    return Layout(structure, shape, transpose, n, d, rank or 0, outer)


def numel_target(layout: Layout) -> int:
    """The d of FOP-norm's trace target: rows of P for matrices, elements for diagonal P."""
    return layout.d if layout.structure in ("full", "lowrank") else layout.n * layout.d


def trace(layout: Layout, M: Tensor) -> Tensor:
    """tr(P) for each stacked structure parameter, shape (B, 1, 1)."""
    sq = M.square().sum((1, 2), keepdim=True)
    if layout.structure == "lowrank":
        return sq + layout.d
    return sq * numel_target(layout) if layout.structure == "scalar" else sq


def schedule(t: int, delay: float) -> float:
    """delta(t) = 1 / (1 + t / tau)^2 of the target-norm schedule gamma(t) = delta ||P||_2 +
    (1 - delta) p_inf: 1 at the start, then the target takes over."""
    return 1.0 / (1.0 + t / delay) ** 2


def rayleigh(layout: Layout, M: Tensor, V: Tensor, out: Tensor | None = None,
             y: Tensor | None = None) -> Tensor:
    """lambda = v^T P v for stacked P's and power-iteration vectors V (B, d, 1), as (B, 1, 1):
    ||M^T v||^2 (plus 1 for I + U U^T), keeping M^T v in ``y``; m^2 for a scalar P."""
    if not layout.stores_transpose:
        return torch.square(M, out=out)
    y = torch.bmm(M.mT, V, out=y)
    lam = torch.linalg.vector_norm(y, dim=1, keepdim=True, out=out).square_()
    return lam.add_(1.0) if layout.structure == "lowrank" else lam


def target_scale(lam: Tensor, delta: float, target: float, out: Tensor | None = None) -> Tensor:
    """The target-norm rescaling c = gamma(t) / lambda = delta + (1 - delta) p_inf / lambda."""
    return torch.reciprocal(lam, out=out).mul_((1 - delta) * target).add_(delta)
