"""The batched machinery: buckets of same-shaped tensors and the flat buffers of a pool."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fop_rl.optim.structures import Layout, numel_target, spectral_scale, trace

_HYPER_BETAS = (0.9, 0.999)  # torch.optim.Adam defaults
_HYPER_EPS = 1e-8


class Bucket:
    """Tensors of one pool with the same structure, n, d and rank: their math, batched.

    Every tensor here is a (B, ., .) view made once, when the pool is built, into buffers that
    persist across steps (a step then spends its time in the products, not in making views):
    ``M`` (d x k, stored as the rows of its transpose ``K``), the hypergradient ``H`` (stored as
    ``HT``), the preconditioned rows ``D``, and two slots, indexed by the pool's ``cur``, of the
    raw gradient rows ``R`` and of ``X = R M``: this step's and the previous step's, swapping
    roles every step. The previous step's ``X`` is exactly the ``R_prev M`` that this step's
    hypergradient needs, so it is kept rather than recomputed.
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
             group: dict[str, Any]) -> None:
        """Take this bucket's views of the pool's buffers (M and H: one per factor), and the
        group's variant options."""
        (self.M,), (self.H,), self.R, self.D = Ms, Hs, rows, D
        self._options(group)
        if self.layout.stores_transpose:
            self.K, self.HT = self.M.mT, self.H.mT
            n, k = self.layout.n, self.M.shape[2]
            self.X = [self.M.new_empty(self.size, n, k) for _ in range(2)]
            self.XT = [X.mT for X in self.X]

    def _options(self, group: dict[str, Any]) -> None:
        self.normalize, self.hyper_normalize = group["normalize"], group["hyper_normalize"]
        self.max_eigenvalue = group["max_eigenvalue"]
        self.target, self.delay = group["target_norm"], group["norm_delay"]

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
        if self.normalize:
            self._through_trace(cur, eta)
        if self.target is not None:
            self._through_spectral_norm(cur, eta)
        if self.hyper_normalize:
            self.H.div_(self._norms(cur))

    def _norms(self, cur: int) -> Tensor:
        """||G|| ||G_prev|| per tensor, (B, 1, 1): hyper_normalize divides by it, so that the
        hyper-step follows the cosine of successive gradients."""
        R, R_prev = self.R[cur], self.R[1 - cur]
        norms = torch.linalg.vector_norm(R, dim=(1, 2), keepdim=True)
        norms.mul_(torch.linalg.vector_norm(R_prev, dim=(1, 2), keepdim=True))
        return norms.clamp_min_(torch.finfo(R.dtype).tiny)

    def _inner(self, cur: int) -> Tensor:
        """<G, P G_prev> per tensor, (B, 1, 1), from the products the step has made."""
        R, R_prev, prev = self.R[cur], self.R[1 - cur], 1 - cur
        if self.layout.stores_transpose:  # <X, X_prev>, plus <G, G_prev> for I + U U^T
            inner = (self.X[cur] * self.X[prev]).sum((1, 2), keepdim=True)
            if self.layout.structure == "lowrank":
                inner += (R * R_prev).sum((1, 2), keepdim=True)
            return inner
        return (R * R_prev * self.M.square()).sum((1, 2), keepdim=True)

    def bind_power(self, V: Tensor) -> None:
        """The warm-started power-iteration vectors of the target-norm schedule, (B, d, 1)."""
        self.V = V

    def power_step(self, t: int) -> None:
        """One warm-started power iteration on M M^T (or U U^T: the same top eigenvector), then
        lambda = v^T P v and c = gamma(t) / lambda = delta + (1 - delta) p_inf / lambda, (B, 1, 1),
        kept until the next step's hypergradient (M and v do not change in between)."""
        if self.layout.stores_transpose:
            w = torch.bmm(self.M, torch.bmm(self.K, self.V))
            norm = torch.linalg.vector_norm(w, dim=1, keepdim=True)
            torch.div(w, norm.clamp_min_(torch.finfo(w.dtype).tiny), out=self.V)
        self.measure(t)

    def measure(self, t: int) -> None:
        """lambda and c from the kept v and M (after a power step, or for a new pool)."""
        self.lam, self.c, self.delta = spectral_scale(self.layout, self.M, self.V, t,
                                                      self.target, self.delay)

    def _through_spectral_norm(self, cur: int, eta: float) -> None:
        """The target-norm hypergradient: H, made for P, differentiated through
        c = delta + (1 - delta) p_inf / lambda(M), with dlambda/dM = 2 v v^T M (2 m for scalar)."""
        # dJ/dlambda = eta <G, P G_prev> (1 - delta) p_inf / lambda^2
        coef = self._inner(cur).mul_(self.lam.square().reciprocal_())
        coef.mul_(2 * eta * (1 - self.delta) * self.target)
        self.H.mul_(self.c)
        if self.layout.stores_transpose:  # 2 v (v^T M) coef, as an outer product
            self.H.addcmul_(self.V, torch.bmm(self.V.mT, self.M).mul_(coef))
        else:
            self.H.addcmul_(self.M, coef)

    def _through_trace(self, cur: int, eta: float) -> None:
        """FOP-norm's hypergradient: H, made for P, differentiated through c = d / tr(P)."""
        # dJ/dM = c H + eta <G, P G_prev> (c / tr P) dtr(P)/dM
        lay, M, structure = self.layout, self.M, self.layout.structure
        inner = self._inner(cur)
        tr = trace(lay, M)
        c = numel_target(lay) / tr
        grad_trace = 2 * M * (numel_target(lay) if structure == "scalar" else 1)
        self.H.mul_(c).add_(grad_trace * (eta * inner * c / tr))

    def cap(self) -> None:
        """Rescale M so that P's largest eigenvalue is at most ``max_eigenvalue``."""
        cap(self.layout, self.M, self.max_eigenvalue)

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
        if self.target is not None:
            self.D.mul_(self.c)


class KroneckerBucket(Bucket):
    """Linear weights preconditioned on both sides (``side="both"``): D = P_out G P_in, with
    P_in = B B^T (or I + B B^T) from ``M`` and P_out = A A^T (or I + A A^T) from ``A``, both
    stored as the rows of their transposes. The rows R are G itself (out x in).

    Two slots, as ``X`` in :class:`Bucket`, keep ``Y = R P_in`` and ``Z = P_out R``: the previous
    step's are the products this step's hypergradients need.
    """

    def bind(self, Ms: list[Tensor], Hs: list[Tensor], rows: list[Tensor], D: Tensor,
             group: dict[str, Any]) -> None:
        (self.M, self.A), (self.H, self.HA), self.R, self.D = Ms, Hs, rows, D
        self._options(group)
        self.K, self.KA, self.HT, self.HAT = self.M.mT, self.A.mT, self.H.mT, self.HA.mT
        self.Y = [torch.empty_like(rows[0]) for _ in range(2)]
        self.Z = [torch.empty_like(rows[0]) for _ in range(2)]

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
        if self.hyper_normalize:
            norms = self._norms(cur)
            self.H.div_(norms)
            self.HA.div_(norms)

    def cap(self) -> None:
        """lambda_max(P_out (x) P_in) = lambda_max(P_out) lambda_max(P_in): each factor is
        capped at sqrt(kappa)."""
        kappa = math.sqrt(self.max_eigenvalue)
        cap(self.layout, self.M, kappa)
        cap(self.layout.outer, self.A, kappa)

    def precondition(self, cur: int) -> None:
        """D = P_out (R P_in); Y = R P_in and Z = P_out R are kept for the next step."""
        R = self.R[cur]
        self._left(self._right(R, self.Y[cur]), self.D)
        self._left(R, self.Z[cur])


def cap(layout: Layout, M: Tensor, kappa: float) -> None:
    """Rescale stacked M so that each P's largest eigenvalue is at most ``kappa``.

    Scalar and diagonal P have eigenvalues m^2: clamped exactly. For P = M M^T (or I + U U^T)
    the largest eigenvalue is ||M||_2^2 (or 1 + ||U||_2^2) <= ||M||_1 ||M||_inf, a bound that two
    reductions give: M shrinks when the bound passes the cap, so the true eigenvalue never does
    (it may stay a little below the cap where the bound is loose).
    """
    if not layout.stores_transpose:
        M.clamp_(-math.sqrt(kappa), math.sqrt(kappa))
        return
    absolute = M.abs()  # ||M||_1: largest column sum; ||M||_inf: largest row sum
    bound = absolute.sum(1, keepdim=True).amax(2, keepdim=True)
    bound.mul_(absolute.sum(2, keepdim=True).amax(1, keepdim=True))
    room = kappa - 1.0 if layout.structure == "lowrank" else kappa
    M.mul_(bound.clamp_min_(torch.finfo(M.dtype).tiny).reciprocal_().mul_(room)
           .clamp_(max=1.0).sqrt_())


class Pool:
    """The buckets of one param group that step together, with their state in flat buffers.

    Elementwise work (gathering gradients, the finiteness check, the hyper-optimizer, the base
    step) then costs one torch call per step whatever the number of tensors: for the small
    layers of RL policies the count of calls, not arithmetic, is what costs. ``optimizer.state[p]``
    holds views into the buffers, so ``state_dict()`` sees live values.

    ``fused`` pools (base: torch SGD) step it themselves in one call of its fused kernel, with D
    as the gradient, and keep its ``momentum_buffer`` in the state as torch SGD does.
    """

    def __init__(self, states: dict, buckets: list[Bucket], group: dict, fused: bool):
        self.buckets, self.group, self.fused = buckets, group, fused
        self.params = [p for b in buckets for p in b.params]
        self.states = [states[p] for p in self.params]
        self.layouts = [lay for b in buckets for lay in b.layouts]
        # M-like state in flat buffers, bucket by bucket, factor by factor, tensor by tensor:
        # each bucket's factor is then one (B, ., .) piece
        self.factors = [(states[p], suffix, lay) for b in buckets
                        for suffix, lay in b.layout.factors() for p in b.params]
        self.hyper_step: int = self.states[0]["fop_hyper_step"]  # equal in a pool: in its key
        self.step_count = torch.tensor(float(self.hyper_step), device=self.params[0].device)
        self.M = self._flatten("fop_M")
        self.exp_avg = self._flatten("fop_hyper_exp_avg")
        self.exp_avg_sq = self._flatten("fop_hyper_exp_avg_sq")
        row_shapes = [(lay.n, lay.d) for lay in self.layouts]
        numel, h = sum(lay.n * lay.d for lay in self.layouts), self.M.numel()
        # One buffer [rows 0 | H | rows 1]: rows[cur] holds this step's gradient rows, rows[1 -
        # cur] the previous step's; this step's rows and H are one piece, checked in one call.
        self.buffer = self.M.new_zeros(2 * numel + h)
        self.rows = [self.buffer[:numel], self.buffer[numel + h :]]
        self.H = self.buffer[numel : numel + h]
        self.checked = [self.buffer[: numel + h], self.buffer[numel:]]
        self.cur = 0
        self.row_views = [split(r, row_shapes) for r in self.rows]
        # the same slots seen in the parameters' shapes: gradients are copied in with one call
        self.grad_slots = [[lay.unrows(v) for lay, v in zip(self.layouts, views, strict=True)]
                           for views in self.row_views]
        self.D = self.M.new_empty(numel)
        self.D_params = [lay.unrows(v) for lay, v in zip(self.layouts, split(self.D, row_shapes),
                                                         strict=True)]
        self.transposed = any(lay.transpose for lay in self.layouts)
        for b, Ms, Hs, R0, R1, D in zip(buckets, self._factor_views(self.M, "fop_M"),
                                        self._factor_views(self.H, "fop_M"),
                                        self._row_views(self.rows[0]),
                                        self._row_views(self.rows[1]),
                                        self._row_views(self.D), strict=True):
            b.bind(Ms, Hs, [R0, R1], D, group)
        if group["target_norm"] is not None:  # one factor per tensor (checked by FOP)
            self.power = self._flatten("fop_power_v")
            for b, (V,) in zip(buckets, self._factor_views(self.power, "fop_power_v"),
                               strict=True):
                b.bind_power(V)
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
        """One flat buffer for ``state[key + suffix]`` (shaped like that factor) of every factor,
        which become views of it."""
        flat = torch.cat([lay.flat_m(s[key + suffix]) for s, suffix, lay in self.factors])
        pieces = flat.split([s[key + suffix].numel() for s, suffix, _ in self.factors])
        for (s, suffix, lay), piece in zip(self.factors, pieces, strict=True):
            s[key + suffix] = lay.view_m(piece, s[key + suffix].shape)
        return flat

    def _factor_views(self, flat: Tensor, key: str) -> list[list[Tensor]]:
        """Each bucket's factors in a flat buffer laid out as ``_flatten`` does, as (B, ., .)
        views shaped like ``state[key + suffix]``."""
        out, offset = [], 0
        first = 0  # index of the bucket's first tensor
        for b in self.buckets:
            views = []
            for suffix, lay in b.layout.factors():
                shape = self.states[first][key + suffix].shape
                size = b.size * math.prod(shape)
                views.append(lay.view_m(flat[offset : offset + size], shape, (b.size,)))
                offset += size
            out.append(views)
            first += b.size
        return out

    def _row_views(self, flat: Tensor) -> list[Tensor]:
        """Each bucket's gradient rows (B, n, d) in a flat buffer laid out tensor after tensor."""
        out, offset = [], 0
        for b in self.buckets:
            size = b.size * b.layout.n * b.layout.d
            out.append(flat[offset : offset + size].view(b.size, b.layout.n, b.layout.d))
            offset += size
        return out

    def count_nonfinite(self, H: Tensor | None) -> None:
        """After a non-finite check: count, per tensor, a non-finite gradient or hypergradient."""
        bad = {id(s): not p.grad.isfinite().all() for p, s in zip(self.params, self.states,
                                                                   strict=True)}
        if H is not None:
            pieces = H.split([s["fop_M" + suffix].numel() for s, suffix, _ in self.factors])
            for (s, _, _), piece in zip(self.factors, pieces, strict=True):
                bad[id(s)] = bad[id(s)] or not piece.isfinite().all()
        for s in self.states:
            s["fop_nonfinite_skips"] += int(bad[id(s)])

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
                if b.target is not None:
                    b.measure(self.hyper_step)
        eta = self.states[0]["fop_prev_lr"]
        for b in self.buckets:
            b.hypergradient(self.cur, eta)
        return self.H

    def learn(self, H: Tensor) -> None:
        """One hyper-optimizer step on every M of the pool (torch's Adam, or SGD), then the
        eigenvalue cap where there is one."""
        self.hyper_step += 1
        for s in self.states:
            s["fop_hyper_step"] = self.hyper_step
        if self.group["hyper_optimizer"] == "sgd":
            self.M.add_(H, alpha=-self.group["hyper_lr"])
        else:
            self._adam(H)
        if self.group["max_eigenvalue"] is not None:
            for b in self.buckets:
                b.cap()

    def _adam(self, H: Tensor) -> None:
        hyper_lr = self.group["hyper_lr"]
        self.step_count.add_(1)
        # the kernel of torch.optim.Adam(fused=True): one call for the whole pool
        torch._fused_adam_([self.M], [H], [self.exp_avg], [self.exp_avg_sq], [],
                           [self.step_count], lr=hyper_lr, beta1=_HYPER_BETAS[0],
                           beta2=_HYPER_BETAS[1], weight_decay=0.0, eps=_HYPER_EPS,
                           amsgrad=False, maximize=False)

    def precondition(self) -> None:
        """D = P G for every tensor, into the flat D buffer; keep R M for the next step."""
        for b in self.buckets:
            if b.target is not None:
                b.power_step(self.hyper_step)
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


def split(flat: Tensor, shapes: list) -> list[Tensor]:
    """Views of consecutive pieces of ``flat`` with the given shapes."""
    sizes = [math.prod(shape) for shape in shapes]
    return [piece.view(shape) for piece, shape in zip(flat.split(sizes), shapes, strict=True)]
