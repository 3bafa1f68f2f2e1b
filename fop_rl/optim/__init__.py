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
    ``side="flat"`` (the paper's "a separate M for each layer" read literally): every tensor as
    its whole flattened vector, :math:`(\mathrm{numel}, 1)`, so P couples all its entries;
    ``full`` becomes ``lowrank`` above ``max_full_dim`` as for any tensor (a 64 x 64 weight has
    d = 4096).
    ``side="both"`` (Kronecker FOP, beyond the paper: the structure of K-FAC and Shampoo, learned
    here from first-order information only): a Linear weight's gradient :math:`G` (out x in) is
    preconditioned on both sides, :math:`D = P_{out} G P_{in}` with :math:`P_{out} = A A^\top`
    and :math:`P_{in} = B B^\top` (each ``lowrank``, :math:`I + U U^\top`, where its side
    exceeds ``max_full_dim``), that is :math:`P = P_{out} \otimes P_{in}` on the flattened
    weight. Each factor learns by its exact hypergradient (the product rule):
    :math:`H_A = -\eta (G_t P_{in} G_{t-1}^\top + G_{t-1} P_{in} G_t^\top) A`,
    :math:`H_B = -\eta (G_{t-1}^\top P_{out} G_t + G_t^\top P_{out} G_{t-1}) B` (for
    :math:`I + U U^\top`, the same with :math:`U`). Other tensors as with ``side="input"``.

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
* ``none``: no :math:`P`; the base optimizer steps the group's tensors alone (set per param
  group: ``fop-policy-momentum`` leaves the value function's group to momentum this way).

``normalize=True`` (FOP-norm, paper appendix A.2) uses :math:`\tilde P = c P` with
:math:`c = d / \mathrm{tr}(P)`, so :math:`\mathrm{tr}(\tilde P) = d`, the trace of the identity
(for ``diagonal``, :math:`d` is the number of elements): the learned matrix rotates and reshapes
the step without changing its overall scale. Its hypergradient differentiates through
:math:`c`: :math:`\tilde H = c H + \eta\,\langle G, P G_{t-1}\rangle \frac{c}{\mathrm{tr} P}
\nabla \mathrm{tr}(P)`.

Against correlated gradients (successive PPO minibatch gradients agree, so the hypergradient
keeps stretching P along their common direction):

* ``max_eigenvalue`` :math:`\kappa \ge 1`: after each hyper-step, scalar and diagonal
  :math:`m` are clamped to :math:`|m| \le \sqrt\kappa` (their eigenvalues are :math:`m^2`);
  a full :math:`M` is multiplied by :math:`\min(1, \sqrt{\kappa / b})` with
  :math:`b = \|M\|_1 \|M\|_\infty \ge \|M\|_2^2 = \lambda_{\max}(P)`, a low-rank
  :math:`U` by :math:`\min(1, \sqrt{(\kappa - 1) / b})`. So :math:`\lambda_{\max}(P) \le
  \kappa` holds exactly at every step (where the bound is loose, P stops a little short of
  the cap). A projection, not part of the hypergradient. Kronecker FOP caps each factor at
  :math:`\sqrt\kappa`: :math:`\lambda_{\max}(P_{out} \otimes P_{in})` is their product.
* ``target_norm`` :math:`p_\infty` with ``norm_delay`` :math:`\tau` (the paper's convergence
  section): the step uses :math:`\tilde P = c P` with :math:`c = \gamma(t) / \lambda`,
  :math:`\gamma(t) = \delta(t) \lambda + (1 - \delta(t)) p_\infty`, :math:`\delta(t) = 1 /
  (1 + t / \tau)^2` (:math:`t`: hyper-steps so far), so :math:`\|\tilde P\|_2` moves from
  :math:`\|P\|_2` to :math:`p_\infty`. :math:`\lambda = v^\top P v` with :math:`v` one
  power iteration on :math:`M M^\top` (or :math:`U U^\top`) per step, warm-started from the
  previous step's (kept in the state): once it has converged, which it does within a few steps
  of a slowly changing M, :math:`\lambda = \|P\|_2` to rounding (tested); scalar P:
  :math:`\lambda = m^2`. The hypergradient differentiates through :math:`c`, with :math:`v`
  held: :math:`\tilde H = c H + \eta \langle G, P G_{t-1}\rangle (1 - \delta) p_\infty /
  \lambda^2 \cdot 2 v v^\top M`.
* ``hyper_normalize``: :math:`H_t` is divided by :math:`\|G_t\|_F \|G_{t-1}\|_F` per tensor
  (after FOP-norm's chain rule, if any), so the hyper-step follows the agreement (cosine) of
  successive gradients, not their size.

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
state inside ``self.state[p]``; an SGD or Adam base is stepped in one call of the kernel of
``torch.optim.SGD(fused=True)`` or ``torch.optim.Adam(fused=True)`` (bit for bit its update),
any other base sees D in ``p.grad`` during its ``step()``.

The variants' numbers per tensor (norms, eigenvalue bounds, rescalings) live in one vector per
pool, so their arithmetic is one call for all tensors; buckets write into and read from (B, 1, 1)
views of it.

Modules: :mod:`~fop_rl.optim.structures` (the structures of M and the gradient's rows),
:mod:`~fop_rl.optim.buckets` (the batched products of same-shaped tensors),
:mod:`~fop_rl.optim.pool` (the flat buffers of a pool and the phases of its step),
:mod:`~fop_rl.optim.fop` (the optimizer, its state and diagnostics).
"""

from fop_rl.optim.fop import FOP, PreconditionerDiagnostics, panels

# pickles (SB3's saved models) name the class by its public path
FOP.__module__ = __name__
PreconditionerDiagnostics.__module__ = __name__

__all__ = ["FOP", "PreconditionerDiagnostics", "panels"]
