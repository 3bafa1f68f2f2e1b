"""A pool: the buckets of one param group that step together, their state in flat buffers."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from fop_rl.optim.buckets import Bucket
from fop_rl.optim.structures import schedule, target_scale

_HYPER_BETAS = (0.9, 0.999)  # torch.optim.Adam defaults
_HYPER_EPS = 1e-8
# the state a pool keeps for the base it steps itself: torch SGD's and torch Adam's, per tensor
BASE_STATE = {"sgd": ("momentum_buffer",), "adam": ("step", "exp_avg", "exp_avg_sq")}


class Pool:
    """The buckets of one param group that step together, with their state in flat buffers.

    Elementwise work (gathering gradients, the finiteness check, the hyper-optimizer, the base
    step) then costs one torch call per step whatever the number of tensors: for the small
    layers of RL policies the count of calls, not arithmetic, is what costs. So do the
    variants' rescalings, one number per tensor (or per factor) kept in a vector for the whole
    pool and spread over a flat buffer by ``repeat_interleave``. ``optimizer.state[p]`` holds
    views into the buffers, so ``state_dict()`` sees live values.

    A pool whose ``base`` is ``"sgd"`` or ``"adam"`` steps torch's SGD or Adam itself, in one
    call of its fused kernel with D as the gradient, keeping the state that torch keeps
    (:data:`BASE_STATE`) where torch keeps it; ``None``: FOP steps its base optimizer.
    """

    def __init__(self, states: dict, buckets: list[Bucket], group: dict, base: str | None):
        self.buckets, self.group, self.base = buckets, group, base
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
            b.bind(Ms, Hs, [R0, R1], D, group["normalize"])
        if group["hyper_normalize"]:
            self._init_hyper_normalize()
        if group["max_eigenvalue"] is not None:
            self._init_cap(group["max_eigenvalue"])
        if group["target_norm"] is not None:
            self._init_target_norm()
        self.started = "fop_prev_grad" in self.states[0]  # equal in a pool: in its key
        if self.started:
            torch.cat([s["fop_prev_grad"].reshape(-1) for s in self.states], out=self.rows[1])
            self._point_prev_grad()
        # versions of M and the buffer when the last step ended: X_prev = R_prev M is valid
        # while they have not changed
        self.cache_key: tuple[int, int] | None = None
        self.native: Any = None  # the C++ Pool over these buffers, made at its first step
        self.fresh = False
        # the base's state by name, each a list over the tensors, once a first step made it
        self.base_state: dict[str, list[Tensor]] | None = None
        keys = BASE_STATE.get(base or "", ())
        if keys and all(k in s.get("base", {}) for s in self.states for k in keys):
            self.base_state = {k: [s["base"][k] for s in self.states] for k in keys}

    # --- layout of the flat buffers ----------------------------------------------------------

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
        out, offset, first = [], 0, 0  # first: index of the bucket's first tensor
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

    def _point_prev_grad(self) -> None:
        for s, view in zip(self.states, self.row_views[1 - self.cur], strict=True):
            s["fop_prev_grad"] = view

    def _versions(self) -> tuple[int, int]:
        """Version counters of M and the buffer: unchanged since the last step's end (its
        ``cache_key``) means X_prev = R_prev M still holds."""
        return self.M._version, self.buffer._version

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

    # --- the step ----------------------------------------------------------------------------

    def gather(self) -> None:
        """This step's raw gradients as rows, into one flat buffer (one copy)."""
        self.fresh = self.cache_key == self._versions()
        torch._foreach_copy_(self.grad_slots[self.cur], [p.grad for p in self.params])

    def hypergradients(self) -> Tensor | None:
        """All buckets' hypergradients, flat like M, or None before the first previous step."""
        if self.group["hyper_normalize"]:
            self._grad_norms(self.cur)  # this step's: the next step's previous ones
        if not self.started:
            return None
        if not self.fresh:  # a new pool, or M or G_prev edited since the last step
            for b in self.buckets:
                b.refresh(1 - self.cur)
            if self.group["target_norm"] is not None:
                self._measure()
            if self.group["hyper_normalize"]:
                self._grad_norms(1 - self.cur)
        eta = self.states[0]["fop_prev_lr"]
        for b in self.buckets:
            b.hypergradient(self.cur, eta)
        if self.group["target_norm"] is not None:
            self._through_target_norm(eta)
        if self.group["hyper_normalize"]:
            self._hyper_normalize()
        return self.H

    def learn(self, H: Tensor) -> None:
        """One hyper-optimizer step on every M of the pool (torch's Adam, or SGD), then the
        eigenvalue cap where there is one."""
        self._count_hyper_step()
        if self.group["hyper_optimizer"] == "sgd":
            self.M.add_(H, alpha=-self.group["hyper_lr"])
        else:
            self._adam(H)
        if self.group["max_eigenvalue"] is not None:
            self._cap()

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
        if self.group["target_norm"] is not None:
            self._power_step()
        for b in self.buckets:
            b.precondition(self.cur)
        if self.group["target_norm"] is not None:
            for b, c in zip(self.buckets, self.c_views, strict=True):
                b.D.mul_(c)

    def base_step(self) -> None:
        """The base's update with D as gradient, in one call of the kernel of
        ``torch.optim.SGD(fused=True)`` (v <- mu v + D; p <- p - lr v with its other options)
        or ``torch.optim.Adam(fused=True)``."""
        # the kernels walk every tensor in memory order: D must be laid out like p
        grads = [D.contiguous() for D in self.D_params] if self.transposed else self.D_params
        g = self.group
        if self.base == "adam":
            if self.base_state is None:  # as torch's fused Adam starts a tensor's state
                self._keep_base_state(step=[p.new_zeros((), dtype=torch.float32)
                                            for p in self.params],
                                      exp_avg=[torch.zeros_like(p) for p in self.params],
                                      exp_avg_sq=[torch.zeros_like(p) for p in self.params])
            state = self.base_state
            torch._foreach_add_(state["step"], 1)
            torch._fused_adam_(self.params, grads, state["exp_avg"], state["exp_avg_sq"], [],
                               state["step"], lr=g["lr"], beta1=g["betas"][0],
                               beta2=g["betas"][1], weight_decay=g["weight_decay"], eps=g["eps"],
                               amsgrad=False, maximize=g["maximize"])
            return
        first = g["momentum"] != 0 and self.base_state is None
        if first:  # the kernel fills the buffers on the first step
            self._keep_base_state(momentum_buffer=[torch.empty_like(p) for p in self.params])
        velocity = self.base_state["momentum_buffer"] if self.base_state else []
        torch._fused_sgd_(self.params, grads, velocity, weight_decay=g["weight_decay"],
                          momentum=g["momentum"], lr=g["lr"], dampening=g["dampening"],
                          nesterov=g["nesterov"], maximize=g["maximize"], is_first_step=first)

    def _keep_base_state(self, **lists: list[Tensor]) -> None:
        """The base's new state, in torch's place for it (``state[p]["base"]``)."""
        self.base_state = lists
        for key, tensors in lists.items():
            for s, t in zip(self.states, tensors, strict=True):
                s.setdefault("base", {})[key] = t

    def remember(self) -> None:
        """This step's gradients become the previous ones (the buffers swap), with their lr."""
        self.cur = 1 - self.cur
        self.started = True
        self._point_prev_grad()
        self.cache_key = self._versions()
        lr = self.group["lr"]
        for s in self.states:
            s["fop_prev_lr"] = lr

    # --- the same step with its calls made from C++ (native.py) ------------------------------

    def takes_native(self) -> bool:
        """Whether the C++ step applies: full and low-rank buckets on one side or both, Adam
        learning M, torch SGD or Adam as the base with its state made, neither FOP-norm nor the
        target norm, and a previous gradient."""
        g = self.group
        return (self.base is not None and self.started and self.base_state is not None
                and not self.transposed and g["hyper_optimizer"] == "adam"
                and not g["normalize"] and g["target_norm"] is None
                and all(lay.stores_transpose for b in self.buckets
                        for _, lay in b.layout.factors()))

    def native_ready(self, extension: Any) -> bool:
        """Whether the C++ step can run now, its Pool made at the first time: not where M or
        the previous gradient were edited since the last step (the Python step recomputes what
        they change)."""
        if self.cache_key != self._versions():
            return False
        if self.native is None:
            self.native = self._native_pool(extension)
        return True

    def _native_pool(self, extension: Any) -> Any:
        """The C++ Pool over this pool's buffers and views, named as native_step.cpp reads them."""
        views, lists = [b.native_views() for b in self.buckets], {
            "slots0": self.grad_slots[0], "slots1": self.grad_slots[1], "checked": self.checked,
            "params": self.params, "D_params": self.D_params, **self.base_state}
        tensors = {"M": self.M, "H": self.H, "exp_avg": self.exp_avg,
                   "exp_avg_sq": self.exp_avg_sq, "step_count": self.step_count}
        if self.group["hyper_normalize"]:
            tensors |= {"norm0": self.grad_norms[0][0], "norm1": self.grad_norms[1][0],
                        "norm_product": self.norm_product}
            for named, n0, n1, product in zip(views, self.grad_norms[0][1],
                                              self.grad_norms[1][1], self.norm_product_views,
                                              strict=True):
                named |= {"norm0": n0, "norm1": n1, "norm_product": product}
        if self.group["max_eigenvalue"] is not None:
            (cols, col_views), (rows, row_views) = self.bounds
            tensors |= {"abs_M": self.abs_M, "cols": cols, "rows": rows,
                        "cap_room": self.cap_room}
            for named, abs_b, col_b, row_b in zip(views, self.abs_views, col_views, row_views,
                                                  strict=True):
                for f, pieces in enumerate(zip(abs_b, col_b, row_b, strict=True)):
                    named |= dict(zip((f"abs{f}", f"col{f}", f"row{f}"), pieces, strict=True))
        numbers = {"beta1": _HYPER_BETAS[0], "beta2": _HYPER_BETAS[1], "eps": _HYPER_EPS,
                   "tiny": torch.finfo(self.M.dtype).tiny}
        return extension.Pool(views, [b.native_flags() for b in self.buckets], lists, tensors,
                              self.base, numbers)

    def _native_base(self) -> dict[str, float]:
        """The base's options for this step, as numbers, by the names native_step.cpp reads."""
        g = self.group
        keys = (("lr", "weight_decay", "eps") if self.base == "adam" else
                ("lr", "weight_decay", "momentum", "dampening", "nesterov"))
        options = {k: float(g[k]) for k in (*keys, "maximize")}
        if self.base == "adam":
            options["beta1"], options["beta2"] = (float(b) for b in g["betas"])
        return options

    def step_native(self) -> bool:
        """FOP's whole step for this pool alone (gather to remember) in one call of the C++
        Pool; False, having learned and stepped nothing, where a gradient or hypergradient is
        not finite."""
        if not self.native.step([p.grad for p in self.params], self.cur,
                                self.states[0]["fop_prev_lr"], self.group["hyper_lr"],
                                self._native_base()):
            self.count_nonfinite(self.H)
            return False
        self._finish_native()
        return True

    def hypergradients_native(self) -> Tensor:
        """:meth:`gather` and :meth:`hypergradients` from C++: H, for FOP's finiteness check
        over all pools."""
        self.native.hypergradients([p.grad for p in self.params], self.cur,
                                   self.states[0]["fop_prev_lr"])
        return self.H

    def update_native(self) -> None:
        """:meth:`learn`, :meth:`precondition` and :meth:`base_step` from C++."""
        self.native.update(self.cur, self.group["hyper_lr"], self._native_base())
        self._finish_native()

    def _finish_native(self) -> None:
        self._count_hyper_step()
        self.remember()

    def _count_hyper_step(self) -> None:
        self.hyper_step += 1
        for s in self.states:
            s["fop_hyper_step"] = self.hyper_step

    # --- variants: their numbers per tensor (or factor) as one vector for the whole pool ------

    def _per_tensor(self) -> tuple[Tensor, list[Tensor]]:
        """A vector with one number per tensor (ones), and each bucket's (B, 1, 1) view of it."""
        vector = self.M.new_ones(len(self.params))
        return vector, [v.view(-1, 1, 1) for v in vector.split([b.size for b in self.buckets])]

    def _per_factor(self) -> tuple[Tensor, list[list[Tensor]]]:
        """A vector with one number per factor, and each bucket's factors' (B, 1, 1) views."""
        vector = self.M.new_ones(len(self.factors))
        views, offset = [], 0
        for b in self.buckets:
            views.append([vector[offset + i * b.size : offset + (i + 1) * b.size].view(-1, 1, 1)
                          for i in range(len(b.layout.factors()))])
            offset += b.size * len(b.layout.factors())
        return vector, views

    def _init_hyper_normalize(self) -> None:
        """||G|| per tensor for the rows in each slot: this step's is the next step's previous."""
        self.grad_norms = [self._per_tensor() for _ in range(2)]
        self.norm_product, self.norm_product_views = self._per_tensor()

    def _grad_norms(self, slot: int) -> None:
        for b, norm in zip(self.buckets, self.grad_norms[slot][1], strict=True):
            torch.linalg.vector_norm(b.R[slot], dim=(1, 2), keepdim=True, out=norm)

    def _hyper_normalize(self) -> None:
        """H / (||G|| ||G_prev||) per tensor: the hyper-step follows the cosine of successive
        gradients, not their size."""
        product = torch.mul(self.grad_norms[0][0], self.grad_norms[1][0], out=self.norm_product)
        product.clamp_min_(torch.finfo(product.dtype).tiny)
        for b, norms in zip(self.buckets, self.norm_product_views, strict=True):
            for H in b.Hs:
                H.div_(norms)

    def _init_cap(self, kappa: float) -> None:
        """The cap's room per factor: kappa for P = M M^T, kappa - 1 for U U^T in I + U U^T;
        each Kronecker factor gets sqrt(kappa), as lambda_max(P_out (x) P_in) is their product.
        And views of a persistent |M| by bucket factor, for the bound."""
        self.sqrt_kappa = math.sqrt(kappa)
        rooms = []
        for b in self.buckets:
            for _, lay in b.layout.factors():
                share = self.sqrt_kappa if b.layout.outer is not None else kappa
                rooms += [share - 1.0 if lay.structure == "lowrank" else share] * b.size
        self.cap_room = self.M.new_tensor(rooms)
        self.abs_M = torch.empty_like(self.M)
        self.abs_views = self._factor_views(self.abs_M, "fop_M")
        self.bounds = [self._per_factor() for _ in range(2)]

    def _cap(self) -> None:
        """Rescale M so that P's largest eigenvalue is at most ``max_eigenvalue``.

        Scalar and diagonal P have eigenvalues m^2: clamped exactly. For P = M M^T (or I + U U^T)
        the largest eigenvalue is ||M||_2^2 (or 1 + ||U||_2^2) <= ||M||_1 ||M||_inf, a bound that
        two reductions give: M shrinks when the bound passes the cap, so the true eigenvalue never
        does (it may stay a little below the cap where the bound is loose).
        """
        if not self.layouts[0].stores_transpose:  # a pool's structure is its group's
            self.M.clamp_(-self.sqrt_kappa, self.sqrt_kappa)
            return
        torch.abs(self.M, out=self.abs_M)
        (cols, col_views), (rows, row_views) = self.bounds
        for views, col_b, row_b in zip(self.abs_views, col_views, row_views, strict=True):
            for A, col, row in zip(views, col_b, row_b, strict=True):
                # ||M||_1: largest column sum; ||M||_inf: largest row sum
                torch.amax(A.sum(1, keepdim=True), 2, keepdim=True, out=col)
                torch.amax(A.sum(2, keepdim=True), 1, keepdim=True, out=row)
        bound = cols.mul_(rows).clamp_min_(torch.finfo(cols.dtype).tiny)
        torch.div(self.cap_room, bound, out=bound).clamp_(max=1.0).sqrt_()
        for b, scales in zip(self.buckets, col_views, strict=True):
            for M, scale in zip(b.Ms, scales, strict=True):
                M.mul_(scale)

    def _init_target_norm(self) -> None:
        """The power-iteration vectors (one factor per tensor: FOP checks), flat, and the
        per-tensor numbers of the schedule."""
        self.power = self._flatten("fop_power_v")
        for b, (V,) in zip(self.buckets, self._factor_views(self.power, "fop_power_v"),
                           strict=True):
            b.bind_power(V)
        self.v_norm, self.v_norm_views = self._per_tensor()
        self.lam, self.lam_views = self._per_tensor()
        self.inner, self.inner_views = self._per_tensor()
        self.c, self.c_views = self._per_tensor()

    def _power_step(self) -> None:
        """One warm-started power iteration on every P, then lambda and c for the new v."""
        for b, norm in zip(self.buckets, self.v_norm_views, strict=True):
            b.power_iterate(norm)
        self.v_norm.clamp_min_(torch.finfo(self.v_norm.dtype).tiny)
        for b, norm in zip(self.buckets, self.v_norm_views, strict=True):
            b.V.div_(norm)
        self._measure()

    def _measure(self) -> None:
        """lambda = v^T P v and c = gamma(t) / lambda from the kept v and M, kept until the next
        step's hypergradient (M and v do not change in between)."""
        for b, lam in zip(self.buckets, self.lam_views, strict=True):
            b.rayleigh(lam)
        self.delta = schedule(self.hyper_step, self.group["norm_delay"])
        target_scale(self.lam, self.delta, self.group["target_norm"], out=self.c)

    def _through_target_norm(self, eta: float) -> None:
        """The target-norm hypergradient: H, made for P, differentiated through
        c = delta + (1 - delta) p_inf / lambda(M), with dlambda/dM = 2 v v^T M (2 m for scalar)
        and v held."""
        for b, inner in zip(self.buckets, self.inner_views, strict=True):
            b.inner(self.cur, out=inner)
        # dJ/dlambda = eta <G, P G_prev> (1 - delta) p_inf / lambda^2; the 2 of dlambda/dM
        self.inner.div_(self.lam.square()).mul_(
            2 * eta * (1 - self.delta) * self.group["target_norm"])
        for b, c, coef in zip(self.buckets, self.c_views, self.inner_views, strict=True):
            b.H.mul_(c)
            b.through_rayleigh(coef)


def split(flat: Tensor, shapes: list) -> list[Tensor]:
    """Views of consecutive pieces of ``flat`` with the given shapes."""
    sizes = [math.prod(shape) for shape in shapes]
    return [piece.view(shape) for piece, shape in zip(flat.split(sizes), shapes, strict=True)]
