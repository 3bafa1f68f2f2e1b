"""Buckets: the tensors of a pool with the same structure and shape, their products batched."""

from __future__ import annotations

import torch
from torch import Tensor

from fop_rl.optim.structures import Layout, numel_target, rayleigh, trace


class Bucket:
    """Tensors of one pool with the same structure, n, d and rank: their math, batched.

    Every tensor here is a (B, ., .) view made once, when the pool is built, into buffers that
    persist across steps (a step then spends its time in the products, not in making views):
    ``M`` (d x k, stored as the rows of its transpose ``K``), the hypergradient ``H`` (stored as
    ``HT``), the preconditioned rows ``D``, and two slots, indexed by the pool's ``cur``, of the
    raw gradient rows ``R`` and of ``X = R M``: this step's and the previous step's, swapping
    roles every step. The previous step's ``X`` is exactly the ``R_prev M`` that this step's
    hypergradient needs, so it is kept rather than recomputed.

    What is one number per tensor (the variants' rescalings) the pool does for all its buckets
    at once; a bucket writes its part of those numbers into (B, 1, 1) views the pool hands it.
    """

    def __init__(self, params: list[Tensor], layouts: list[Layout]):
        self.params, self.layouts = params, layouts

    @property
    def layout(self) -> Layout:
        """The math reads structure, n, d and rank: the same for every tensor here."""
        return self.layouts[0]

    @property
    def size(self) -> int:
        return len(self.params)

    def bind(self, Ms: list[Tensor], Hs: list[Tensor], rows: list[Tensor], D: Tensor,
             normalize: bool) -> None:
        """Take this bucket's views of the pool's buffers (M and H: one per factor), and whether
        P is FOP-norm's."""
        self.Ms, self.Hs = Ms, Hs
        (self.M,), (self.H,), self.R, self.D, self.normalize = Ms, Hs, rows, D, normalize
        n, d = self.layout.n, self.layout.d
        if self.layout.stores_transpose:
            self.K, self.HT = self.M.mT, self.H.mT
            self.X = [self.M.new_empty(self.size, n, self.M.shape[2]) for _ in range(2)]
            self.XT = [X.mT for X in self.X]
        # A full P with more rows than half its width learns from C = R^T R_prev (d x d): two
        # products of n d^2 and d^3 flops instead of three of n d^2 (a single row: as many
        # calls, and one more, the symmetrising sum)
        self.gram = self.layout.structure == "full" and 2 * n > d and n > 1
        if self.gram:
            self.C, self.S = (self.M.new_empty(self.size, d, d) for _ in range(2))

    def native_views(self) -> dict[str, Tensor]:
        """The views the C++ step (native_step.cpp) works on, by its names for them."""
        views = {"R0": self.R[0], "R1": self.R[1], "X0": self.X[0], "X1": self.X[1],
                 "M": self.M, "H": self.H, "D": self.D}
        return views | ({"C": self.C, "S": self.S} if self.gram else {})

    def native_flags(self) -> list[str]:
        """Which math of :meth:`hypergradient` and :meth:`precondition` the C++ step makes."""
        return ["lowrank"] * (self.layout.structure == "lowrank") + ["gram"] * self.gram

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
        read R by rows (twice as fast as by columns for a wide layer). A full P with n > d / 2:
        -eta (C + C^T) M with C = R^T R_prev, made as H^T = -eta M^T (C + C^T).
        """
        R, R_prev, prev = self.R[cur], self.R[1 - cur], 1 - cur
        structure = self.layout.structure
        if self.gram:
            torch.bmm(R.mT, R_prev, out=self.C)
            torch.add(self.C, self.C.mT, out=self.S)
            self.HT.baddbmm_(self.K, self.S, beta=0.0, alpha=-eta)
        elif self.layout.stores_transpose:
            self._times_m(cur)
            torch.bmm(self.XT[prev], R, out=self.HT)
            self.HT.baddbmm_(self.XT[cur], R_prev, beta=-eta, alpha=-eta)
        elif structure == "scalar":  # M = m I: -2 eta m <G, G_prev>
            torch.mul((R * R_prev).sum((1, 2), keepdim=True), self.M, out=self.H).mul_(-2 * eta)
        else:  # diagonal: -2 eta m * G * G_prev
            torch.mul(R, R_prev, out=self.H).mul_(self.M).mul_(-2 * eta)
        if self.normalize:
            self._through_trace(cur, eta)

    def inner(self, cur: int, out: Tensor | None = None) -> Tensor:
        """<G, P G_prev> per tensor, (B, 1, 1), from the products the step has made."""
        R, R_prev, prev = self.R[cur], self.R[1 - cur], 1 - cur
        if not self.layout.stores_transpose:  # P = m^2, elementwise
            return torch.sum(R * R_prev * self.M.square(), (1, 2), keepdim=True, out=out)
        out = R.new_empty(self.size, 1, 1) if out is None else out
        if self.gram:  # the hypergradient did not make this step's X
            self._times_m(cur)
        # <X, X_prev>, plus <G, G_prev> for I + U U^T
        torch.linalg.vecdot(self.X[cur].flatten(1), self.X[prev].flatten(1), out=out.view(-1))
        if self.layout.structure == "lowrank":
            out.view(-1).add_(torch.linalg.vecdot(R.flatten(1), R_prev.flatten(1)))
        return out

    def _through_trace(self, cur: int, eta: float) -> None:
        """FOP-norm's hypergradient: H, made for P, differentiated through c = d / tr(P)."""
        # dJ/dM = c H + eta <G, P G_prev> (c / tr P) dtr(P)/dM
        lay, M, structure = self.layout, self.M, self.layout.structure
        inner = self.inner(cur)
        tr = trace(lay, M)
        c = numel_target(lay) / tr
        grad_trace = 2 * M * (numel_target(lay) if structure == "scalar" else 1)
        self.H.mul_(c).add_(grad_trace * (eta * inner * c / tr))

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
            self.D.mul_(numel_target(self.layout) / trace(self.layout, self.M))

    # --- the target-norm schedule: the pool rescales, the bucket makes the products ----------

    def bind_power(self, V: Tensor) -> None:
        """The warm-started power-iteration vectors of the target-norm schedule, (B, d, 1), and
        where ``rayleigh`` keeps M^T v, which the hypergradient reuses."""
        self.V = V
        if self.layout.stores_transpose:
            self.y = V.new_empty(self.size, self.M.shape[2], 1)

    def power_iterate(self, norm: Tensor) -> None:
        """v <- M M^T v (U U^T has the same top eigenvector as I + U U^T), and ||M M^T v|| into
        ``norm``: the pool divides v by it. A scalar P leaves v (and ``norm``, 1) alone."""
        if self.layout.stores_transpose:
            torch.bmm(self.M, torch.bmm(self.K, self.V), out=self.V)
            torch.linalg.vector_norm(self.V, dim=1, keepdim=True, out=norm)

    def rayleigh(self, out: Tensor) -> None:
        """lambda = v^T P v into ``out``, keeping M^T v."""
        rayleigh(self.layout, self.M, self.V, out, getattr(self, "y", None))

    def through_rayleigh(self, coef: Tensor) -> None:
        """H += coef 2 v v^T M (2 coef m for a scalar P): the derivative through lambda, with
        coef = dJ/dlambda (B, 1, 1), the 2 included, and v held."""
        if self.layout.stores_transpose:  # as H^T: (M^T v)(coef v)^T, an outer product
            self.HT.baddbmm_(self.y, self.V.mT * coef)
        else:
            self.H.addcmul_(self.M, coef)


class KroneckerBucket(Bucket):
    """Linear weights preconditioned on both sides (``side="both"``): D = P_out G P_in, with
    P_in = B B^T (or I + B B^T) from ``M`` and P_out = A A^T (or I + A A^T) from ``A``, both
    stored as the rows of their transposes. The rows R are G itself (out x in).

    Two slots, as ``X`` in :class:`Bucket`, keep ``Y = R P_in`` and ``Z = P_out R``: the previous
    step's are the products this step's hypergradients need.
    """

    def bind(self, Ms: list[Tensor], Hs: list[Tensor], rows: list[Tensor], D: Tensor,
             normalize: bool) -> None:
        self.Ms, self.Hs = Ms, Hs
        (self.M, self.A), (self.H, self.HA), self.R, self.D = Ms, Hs, rows, D
        self.K, self.KA, self.HT, self.HAT = self.M.mT, self.A.mT, self.H.mT, self.HA.mT
        self.Y = [torch.empty_like(rows[0]) for _ in range(2)]
        self.Z = [torch.empty_like(rows[0]) for _ in range(2)]

    def native_views(self) -> dict[str, Tensor]:
        return {"R0": self.R[0], "R1": self.R[1], "Y0": self.Y[0], "Y1": self.Y[1],
                "Z0": self.Z[0], "Z1": self.Z[1], "M": self.M, "H": self.H, "A": self.A,
                "HA": self.HA, "D": self.D}

    def native_flags(self) -> list[str]:
        return (["kronecker"] + ["lowrank"] * (self.layout.structure == "lowrank")
                + ["lowrank_out"] * (self.layout.outer.structure == "lowrank"))

    def _right(self, X: Tensor, out: Tensor) -> Tensor:
        """X P_in into ``out``."""
        if self.layout.structure == "lowrank":
            return torch.baddbmm(X, torch.bmm(X, self.M), self.K, out=out)
        return torch.bmm(torch.bmm(X, self.M), self.K, out=out)

    def _left(self, X: Tensor, out: Tensor) -> Tensor:
        """P_out X into ``out``."""
        if self.layout.outer.structure == "lowrank":
            return torch.baddbmm(X, self.A, torch.bmm(self.KA, X), out=out)
        return torch.bmm(self.A, torch.bmm(self.KA, X), out=out)

    def refresh(self, prev: int) -> None:
        self._right(self.R[prev], self.Y[prev])
        self._left(self.R[prev], self.Z[prev])

    def hypergradient(self, cur: int, eta: float) -> None:
        """For theta_t = theta_{t-1} - eta P_out G_{t-1} P_in, by the product rule (S + S^T)
        times the factor, where S = dJ/dP of that side (A or B: the same for I + A A^T):

        H_A = -eta (G P_in G_{t-1}^T + G_{t-1} P_in G^T) A, from Y_prev = G_{t-1} P_in;
        H_B = -eta (G_{t-1}^T P_out G + G^T P_out G_{t-1}) B, from Z_prev = P_out G_{t-1};
        both made as their transposes (the stored order).
        """
        R, Y, Z = self.R[cur], self.Y[1 - cur], self.Z[1 - cur]
        torch.bmm(torch.bmm(self.KA, Y), R.mT, out=self.HAT)
        self.HAT.baddbmm_(torch.bmm(self.KA, R), Y.mT, beta=-eta, alpha=-eta)
        torch.bmm(torch.bmm(Z, self.M).mT, R, out=self.HT)
        self.HT.baddbmm_(torch.bmm(R, self.M).mT, Z, beta=-eta, alpha=-eta)

    def precondition(self, cur: int) -> None:
        """D = P_out (R P_in); Y = R P_in and Z = P_out R are kept for the next step."""
        R = self.R[cur]
        self._left(self._right(R, self.Y[cur]), self.D)
        self._left(R, self.Z[cur])
