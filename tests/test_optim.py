"""FOP against independent computations: autograd hypergradients, torch's own optimizers."""

import io
import math
import os
import subprocess
import sys

import pytest
import torch

from fop_rl.optim import FOP


@pytest.fixture(autouse=True)
def float64_by_default():
    """Tight tolerances need float64; other test modules keep torch's float32 default."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def matrix_view(g: torch.Tensor, side: str = "input") -> torch.Tensor:
    """G (d x n) as the FOP spec defines it, written independently of the optimizer."""
    if side == "flat":
        return g.reshape(-1, 1)
    if g.dim() == 1:
        return g[:, None]
    if g.dim() == 2:
        return g.T if side == "input" else g
    o, i, kh, kw = g.shape
    return g.reshape(o * i, kh * kw).T


def from_view(G: torch.Tensor, shape: tuple, side: str = "input") -> torch.Tensor:
    if side == "flat":
        return G.reshape(shape)
    if len(shape) == 1:
        return G[:, 0]
    if len(shape) == 2:
        return G.T if side == "input" else G
    return G.T.reshape(shape)


def apply_p(structure: str, normalize: bool, M: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """P(M) G with a dense P, from the spec. The optimizer keeps diagonal m as rows (n x d)."""
    d = G.shape[0]
    if structure == "full":
        P = M @ M.T
    elif structure == "lowrank":
        P = torch.eye(d) + M @ M.T
    elif structure == "scalar":
        P = M.square().reshape(()) * torch.eye(d)
    else:
        p_diag = M.T.square()
        scale = p_diag.numel() / p_diag.sum() if normalize else 1.0
        return scale * p_diag * G
    if normalize:
        P = P * (d / torch.trace(P) if structure != "scalar" else 1 / M.square().reshape(()))
    return P @ G


def loss_fn(theta: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-1.0, 2.0, theta.numel()).reshape(theta.shape)
    return ((theta * w).sum() - 1.0) ** 2 + torch.sin(theta).square().sum() + (theta**4).sum()


def grad_at(theta: torch.Tensor) -> torch.Tensor:
    t = theta.detach().clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(t), t)[0]


CASES = [
    # (shape, structure, side, normalize, extra kwargs)
    ((5,), "full", "input", False, {}),
    ((4, 6), "full", "input", False, {}),
    ((4, 6), "full", "output", False, {}),
    ((3, 2, 3, 3), "full", "input", False, {}),
    ((4, 6), "lowrank", "input", False, {"rank": 2}),
    ((4, 6), "full", "input", False, {"max_full_dim": 3, "rank": 3}),
    ((4, 6), "scalar", "input", False, {}),
    ((4, 6), "diagonal", "input", False, {}),
    ((4, 6), "full", "input", True, {}),
    ((4, 6), "lowrank", "input", True, {"rank": 2}),
    ((5,), "diagonal", "input", True, {}),
    ((4, 6), "scalar", "input", True, {}),
    ((4, 6), "full", "flat", False, {}),
    ((3, 2, 3, 3), "full", "flat", False, {}),
    ((4, 6), "full", "flat", False, {"max_full_dim": 10, "rank": 3}),
    ((4, 6), "full", "flat", True, {}),
    ((4, 6), "diagonal", "flat", False, {}),
    ((4, 6), "full", "input", False, {"hyper_normalize": True}),
    ((4, 6), "lowrank", "input", True, {"rank": 2, "hyper_normalize": True}),
    ((4, 6), "diagonal", "input", False, {"hyper_normalize": True}),
]


@pytest.mark.parametrize(("shape", "structure", "side", "normalize", "extra"), CASES)
def test_hypergradient_is_autograd_derivative(shape, structure, side, normalize, extra):
    """Step 2's update of M is M - hyper_lr * dJ(theta_1(M))/dM, and its step uses the new M."""
    torch.manual_seed(0)
    theta0 = torch.randn(shape) * 0.5
    p = torch.nn.Parameter(theta0.clone())
    eta1, eta2, h = 0.03, 0.07, 0.5
    opt = FOP([p], lr=eta1, momentum=0.0, hyper_lr=h, hyper_optimizer="sgd",
              structure=structure, side=side, normalize=normalize, **extra)
    g0 = grad_at(p)
    p.grad = g0.clone()
    opt.step()
    kind = "lowrank" if structure == "full" and "rank" in extra else structure

    # Move to a random, non-symmetric M and the theta_1 it would have produced.
    state = opt.state[p]
    M = torch.randn_like(state["fop_M"]) * 0.5 + (1.0 if kind in ("scalar", "diagonal") else 0.0)
    if kind == "full":
        M = M + torch.eye(M.shape[0])
    state["fop_M"].copy_(M)
    G0 = matrix_view(g0, side)
    with torch.no_grad():
        p.copy_(theta0 - eta1 * from_view(apply_p(kind, normalize, M, G0), shape, side))

    Mv = M.clone().requires_grad_(True)
    theta1 = theta0 - eta1 * from_view(apply_p(kind, normalize, Mv, G0), shape, side)
    H_ref = torch.autograd.grad(loss_fn(theta1), Mv)[0]

    theta1 = p.detach().clone()
    g1 = grad_at(p)
    if extra.get("hyper_normalize"):  # the derivative over the sizes of the two gradients
        H_ref = H_ref / (g1.norm() * g0.norm())
    p.grad = g1.clone()
    opt.param_groups[0]["lr"] = eta2  # takes effect in this step; the hypergradient uses eta1
    opt.step()
    M_new = M - h * H_ref
    torch.testing.assert_close(state["fop_M"], M_new, rtol=1e-10, atol=1e-12)
    D = from_view(apply_p(kind, normalize, M_new, matrix_view(g1, side)), shape, side)
    torch.testing.assert_close(p.detach(), theta1 - eta2 * D, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(p.grad, g1, rtol=0, atol=0)  # the caller's gradient is back


def test_hyper_normalize_divides_by_both_gradient_norms_from_the_first_hyper_step():
    """Untouched between steps (the pool's cached products in use): M = I - h H / (|g1| |g0|)."""
    p = torch.nn.Parameter(torch.zeros(5))
    eta, h = 0.1, 0.5
    opt = FOP([p], lr=eta, momentum=0.0, hyper_lr=h, hyper_optimizer="sgd",
              hyper_normalize=True)
    g0, g1 = torch.arange(1.0, 6.0), torch.tensor([2.0, -1.0, 0.5, 3.0, 1.0])
    for g in (g0, g1):
        p.grad = g.clone()
        opt.step()
    H = -eta * (torch.outer(g1, g0) + torch.outer(g0, g1))
    torch.testing.assert_close(opt.state[p]["fop_M"],
                               torch.eye(5) - h * H / (g1.norm() * g0.norm()))


def test_hyper_adam_matches_torch_adam_on_the_exact_hypergradient():
    torch.manual_seed(1)
    shape, eta, h = (3, 4), 0.05, 1e-2
    p = torch.nn.Parameter(torch.randn(shape))
    opt = FOP([p], lr=eta, momentum=0.0, hyper_lr=h)
    M_ref = torch.eye(4, requires_grad=True)
    adam = torch.optim.Adam([M_ref], lr=h)
    theta_prev = g_prev = None
    for _ in range(5):
        g = grad_at(p)
        if g_prev is not None:
            theta = theta_prev - eta * from_view(apply_p("full", False, M_ref, matrix_view(g_prev)),
                                                  shape)
            M_ref.grad = torch.autograd.grad(loss_fn(theta), M_ref)[0]
            adam.step()
        theta_prev, g_prev = p.detach().clone(), g
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(opt.state[p]["fop_M"], M_ref.detach(), rtol=1e-9, atol=1e-12)


def make_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def train(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 5) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=gen)
        opt.zero_grad()
        ((net(x) - x[:, :3].sin()) ** 2).mean().backward()
        opt.step()


SGD_OPTIONS = {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}


@pytest.mark.parametrize(
    ("options", "torch_opt"),
    [({}, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, fused=True)),
     ({"structure": "scalar"}, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, fused=True)),
     ({"side": "output", "base_kwargs": SGD_OPTIONS},
      lambda ps: torch.optim.SGD(ps, lr=0.05, fused=True, **SGD_OPTIONS)),
     ({"structure": "diagonal", "base": "adam"},
      lambda ps: torch.optim.Adam(ps, lr=0.05, fused=True)),
     ({"side": "flat"}, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, fused=True)),
     ({"max_eigenvalue": 2.0, "hyper_normalize": True},
      lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, fused=True)),
     ({"side": "both"}, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, fused=True))],
)
def test_zero_hyper_lr_equals_base_optimizer(options, torch_opt):
    """With M fixed at I, FOP is its base optimizer, bit for bit (an SGD or Adam base runs the
    kernel of torch's fused SGD or Adam, which agrees with torch's default to rounding)."""
    a, b, c = make_mlp(), make_mlp(), make_mlp()
    train(a, FOP(a.parameters(), lr=0.05, momentum=0.9, hyper_lr=0.0, **options), 20)
    train(b, torch_opt(b.parameters()), 20)
    sgd_options = {"momentum": 0.9, **options.get("base_kwargs", {})}
    train(c, torch.optim.Adam(c.parameters(), lr=0.05) if options.get("base") == "adam" else
          torch.optim.SGD(c.parameters(), lr=0.05, **sgd_options), 20)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
        torch.testing.assert_close(pa, pc, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("options", [{}, {"structure": "lowrank", "rank": 2, "base": "adam"},
                                     {"hyper_optimizer": "sgd", "normalize": True},
                                     {"side": "flat", "max_full_dim": 8},
                                     {"max_eigenvalue": 1.5, "hyper_normalize": True},
                                     {"target_norm": 2.0, "norm_delay": 4.0, "rank": 2},
                                     {"side": "both", "max_full_dim": 7, "max_eigenvalue": 3.0}])
def test_state_dict_round_trip_reproduces_trajectory(options):
    straight = make_mlp()
    opt = FOP(straight.parameters(), lr=0.05, hyper_lr=1e-2, **options)
    train(straight, opt, 10, seed=1)
    train(straight, opt, 10, seed=2)

    first = make_mlp()
    opt1 = FOP(first.parameters(), lr=0.05, hyper_lr=1e-2, **options)
    train(first, opt1, 10, seed=1)
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt1.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = make_mlp(seed=99)
    resumed.load_state_dict(saved["model"])
    opt2 = FOP(resumed.parameters(), lr=0.05, hyper_lr=1e-2, **options)
    opt2.load_state_dict(saved["opt"])
    train(resumed, opt2, 10, seed=2)
    for pa, pb in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    for pa, pb in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(opt.state[pa]["fop_M"], opt2.state[pb]["fop_M"], rtol=0, atol=0)


def test_lr_set_between_steps_takes_effect():
    p = torch.nn.Parameter(torch.ones(3))
    opt = FOP([p], lr=0.1, momentum=0.0, hyper_lr=0.0)
    p.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 1 - 0.1 - 0.5))


def test_preconditioner_stays_psd_and_diagnostics_describe_it():
    net = make_mlp()
    opt = FOP(net.named_parameters(), lr=0.05, hyper_lr=0.05)
    train(net, opt, 30)
    info = {d.name: d for d in opt.diagnostics()}
    assert set(info) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    w = info["0.weight"]
    assert w.matrix.shape == (6, 6) and w.shape == (8, 6) and w.structure == "full"
    eigs = torch.linalg.eigvalsh(w.matrix)
    assert eigs.min() >= -1e-10
    assert math.isclose(w.eig_min, float(eigs.min()), rel_tol=1e-6, abs_tol=1e-9)
    assert math.isclose(w.eig_max, float(eigs.max()), rel_tol=1e-6)
    assert math.isclose(w.frobenius_norm, float(torch.linalg.norm(w.matrix)), rel_tol=1e-9)
    assert not math.isclose(w.frobenius_norm, math.sqrt(6), rel_tol=1e-3)  # it learned
    assert 0.0 < w.angle_deg < 90.0
    by_mapping = opt.diagnostics(names={p: f"x{i}" for i, p in enumerate(net.parameters())})
    assert [d.name for d in by_mapping] == ["x0", "x1", "x2", "x3"]


def fit_to_zero(net: torch.nn.Linear, opt: torch.optim.Optimizer, steps: int = 10) -> None:
    """Drive a Linear layer's outputs on random inputs towards zero."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(16, net.in_features, generator=gen)).square().mean().backward()
        opt.step()


def test_lowrank_diagnostics_match_dense_eigenvalues():
    net = torch.nn.Linear(40, 2)
    opt = FOP(net.parameters(), lr=0.05, hyper_lr=0.05, max_full_dim=16, rank=3)
    fit_to_zero(net, opt)
    weight = opt.diagnostics()[0]
    assert weight.structure == "lowrank" and weight.matrix.shape == (40, 40)
    eigs = torch.linalg.eigvalsh(weight.matrix)
    assert math.isclose(weight.eig_max, float(eigs.max()), rel_tol=1e-9)
    assert math.isclose(weight.eig_min, float(eigs.min()), rel_tol=1e-9)
    assert math.isclose(weight.frobenius_norm, float(weight.matrix.norm()), rel_tol=1e-9)


def test_wide_lowrank_diagnostics_describe_p_from_its_factor():
    """A flattened 20 x 20 weight (d = 400, above MAX_DENSE): P is never made, its description
    matches the dense one."""
    net = torch.nn.Linear(20, 20, bias=False)
    opt = FOP(net.parameters(), lr=0.05, hyper_lr=0.05, side="flat", rank=3, target_norm=3.0,
              norm_delay=2.0)
    fit_to_zero(net, opt)
    d = opt.diagnostics()[0]
    assert d.shown.startswith("factor") and d.matrix.shape == (400, 3)
    c = d.eigenvalues[-1]  # the eigenvalue of the directions U leaves alone
    P = c * torch.eye(400) + d.matrix @ d.matrix.T  # c (I + U U^T), shown as c^(1/2) U
    eigs = torch.linalg.eigvalsh(P)
    assert math.isclose(d.eig_max, float(eigs.max()), rel_tol=1e-9)
    assert math.isclose(d.frobenius_norm, float(P.norm()), rel_tol=1e-9)
    g = opt.state[net.weight]["fop_prev_grad"]
    pg = g @ P
    cos = float((g * pg).sum() / (g.norm() * pg.norm()))
    assert math.isclose(d.angle_deg, math.degrees(math.acos(min(1.0, cos))), rel_tol=1e-9)


def test_nonfinite_gradient_skips_step_and_keeps_state_finite():
    net = make_mlp()
    opt = FOP(net.parameters(), lr=0.05, hyper_lr=1e-2)
    train(net, opt, 3)
    before = [p.detach().clone() for p in net.parameters()]
    M_before = opt.state[net[0].weight]["fop_M"].clone()
    opt.zero_grad()
    net(torch.randn(4, 6)).sum().backward()
    net[0].weight.grad[0, 0] = float("nan")
    opt.step()
    for p, b in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=0)
    torch.testing.assert_close(opt.state[net[0].weight]["fop_M"], M_before, rtol=0, atol=0)
    skips = {d.name: d.nonfinite_skips for d in opt.diagnostics()}
    assert skips == {"param0": 1, "param1": 0, "param2": 0, "param3": 0}
    train(net, opt, 3)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(torch.isfinite(opt.state[p]["fop_M"]).all() for p in net.parameters())


def test_float32_and_unsupported_shapes():
    p32 = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float32))
    odd = torch.nn.Parameter(torch.randn(2, 2, 2, dtype=torch.float32))  # 3-D: identity
    opt = FOP([p32, odd], lr=0.1, momentum=0.0, hyper_lr=1e-3)
    for _ in range(3):
        p32.grad = torch.randn(4, 3, dtype=torch.float32)
        odd.grad = torch.ones(2, 2, 2, dtype=torch.float32)
        before = odd.detach().clone()
        opt.step()
        torch.testing.assert_close(odd.detach(), before - 0.1)
    assert opt.state[p32]["fop_M"].dtype == torch.float32
    assert "fop_M" not in opt.state[odd]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"lr": -1.0}, "lr"), ({"hyper_lr": -1e-3}, "hyper_lr"), ({"momentum": 1.0}, "momentum"),
     ({"momentum": -0.1}, "momentum"), ({"structure": "kfac"}, "structure"),
     ({"side": "left"}, "side"), ({"base": "rmsprop"}, "base"), ({"rank": 0}, "rank"),
     ({"hyper_optimizer": "lbfgs"}, "hyper_optimizer"), ({"max_eigenvalue": 0.0}, "max_eigenvalue"),
     ({"max_eigenvalue": 0.5}, "max_eigenvalue"),
     ({"max_eigenvalue": 4.0, "normalize": True}, "max_eigenvalue"),
     ({"target_norm": 0.0}, "target_norm"), ({"target_norm": 2.0, "norm_delay": 0}, "norm_delay"),
     ({"target_norm": 2.0, "normalize": True}, "target_norm"),
     ({"target_norm": 2.0, "structure": "diagonal"}, "target_norm"),
     ({"side": "both", "structure": "scalar"}, "structure"),
     ({"side": "both", "normalize": True}, "normalize"),
     ({"side": "both", "target_norm": 2.0}, "target_norm")],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"invalid {name}:"):
        FOP([torch.nn.Parameter(torch.ones(2))], **kwargs)


def test_any_torch_optimizer_class_as_base():
    net = make_mlp()
    opt = FOP(net.parameters(), lr=0.01, base=torch.optim.RMSprop, base_kwargs={"alpha": 0.9})
    train(net, opt, 5)
    state = opt.state[net[0].weight]
    assert "square_avg" in state["base"] and "fop_M" in state
    assert opt.param_groups[0]["alpha"] == 0.9


def test_tensor_joining_later_steps_as_if_alone():
    """FOP's state is per tensor: a tensor whose gradient first appears at step 4 (the pools are
    rebuilt around the others' running state) moves exactly as with an optimizer of its own."""
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(5, 3, generator=gen), torch.randn(4, generator=gen)]
    grads = [[torch.randn(t.shape, generator=gen) for t in start] for _ in range(8)]
    joint = [torch.nn.Parameter(t.clone()) for t in start]
    alone = [torch.nn.Parameter(t.clone()) for t in start]
    opt = FOP(joint, lr=0.05, hyper_lr=1e-2)
    solo = [FOP([p], lr=0.05, hyper_lr=1e-2) for p in alone]
    for step, (g_a, g_b) in enumerate(grads):
        joint[0].grad, alone[0].grad = g_a.clone(), g_a.clone()
        solo[0].step()
        if step >= 3:
            joint[1].grad, alone[1].grad = g_b.clone(), g_b.clone()
            solo[1].step()
        opt.step()
    for a, b in zip(joint, alone, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(opt.state[joint[1]]["fop_M"], solo[1].state[alone[1]]["fop_M"],
                               rtol=0, atol=0)


def test_group_with_structure_none_is_left_to_the_base_optimizer():
    """Two param groups, the second with structure "none": it moves exactly as with torch's SGD
    alone and learns no P, while the first moves exactly as with an FOP of its own."""
    gen = torch.Generator().manual_seed(5)
    start = [torch.randn(5, 3, generator=gen), torch.randn(4, 2, generator=gen)]
    joint = [torch.nn.Parameter(t.clone()) for t in start]
    alone = [torch.nn.Parameter(t.clone()) for t in start]
    opt = FOP([{"params": [joint[0]]}, {"params": [joint[1]], "structure": "none"}], lr=0.05,
              hyper_lr=1e-2)
    solo = [FOP([alone[0]], lr=0.05, hyper_lr=1e-2),
            torch.optim.SGD([alone[1]], lr=0.05, momentum=0.9)]
    for _ in range(6):
        for a, b in zip(joint, alone, strict=True):
            g = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = g.clone(), g.clone()
        opt.step()
        for o in solo:
            o.step()
    for a, b in zip(joint, alone, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert "fop_M" in opt.state[joint[0]] and "fop_M" not in opt.state[joint[1]]
    assert [d.name for d in opt.diagnostics()] == ["param0"]


def test_base_options_pass_directly_as_to_torch():
    net = torch.nn.Linear(4, 3)
    opt = FOP(net.parameters(), lr=0.1, weight_decay=1e-4, nesterov=True, dampening=0.0)
    assert opt.param_groups[0]["weight_decay"] == 1e-4 and opt.param_groups[0]["nesterov"]
    # the same optimizer as through base_kwargs, step for step
    twin = torch.nn.Linear(4, 3)
    twin.load_state_dict(net.state_dict())
    other = FOP(twin.parameters(), lr=0.1, base_kwargs={"weight_decay": 1e-4, "nesterov": True})
    for _ in range(3):
        for model, optimizer in ((net, opt), (twin, other)):
            optimizer.zero_grad()
            model(torch.ones(2, 4)).square().sum().backward()
            optimizer.step()
    torch.testing.assert_close(net.weight, twin.weight, rtol=0, atol=0)
    adam = FOP(net.parameters(), lr=1e-3, base="adam", betas=(0.8, 0.9), eps=1e-5)
    assert adam.param_groups[0]["betas"] == (0.8, 0.9) and adam.param_groups[0]["eps"] == 1e-5
    with pytest.raises(TypeError, match="'wieght_decay'"):
        FOP(net.parameters(), lr=0.1, wieght_decay=1e-4)
    with pytest.raises(TypeError, match="'betas'"):  # an Adam option, but the base is SGD
        FOP(net.parameters(), lr=0.1, betas=(0.9, 0.99))


def test_sparse_gradient_is_a_clear_error():
    embedding = torch.nn.Embedding(10, 4, sparse=True)
    opt = FOP(embedding.parameters(), lr=0.1)
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match="FOP needs dense gradients"):
        opt.step()


def correlated_steps(opt: FOP, p: torch.nn.Parameter, steps: int) -> list[float]:
    """The PPO failure in miniature: successive gradients nearly parallel (a quadratic bowl
    descended with a small step), so the hypergradient keeps stretching P along one direction.
    Returns P's largest eigenvalue after each step."""
    target = torch.linspace(-1.0, 1.0, p.numel()).reshape(p.shape) * 5.0
    largest = []
    for _ in range(steps):
        p.grad = (p.detach() - target) * torch.linspace(1.0, 2.0, p.numel()).reshape(p.shape)
        opt.step()
        largest.append(max(d.eig_max for d in opt.diagnostics()))
    return largest


@pytest.mark.parametrize(("structure", "extra"), [("full", {}), ("lowrank", {"rank": 2}),
                                                  ("scalar", {}), ("diagonal", {}),
                                                  ("full", {"side": "both", "max_full_dim": 5})])
def test_eigenvalue_cap_holds_under_correlated_gradients(structure, extra):
    kappa = 3.0
    free_p = torch.nn.Parameter(torch.zeros(4, 6))
    free = correlated_steps(FOP([free_p], lr=1e-3, hyper_lr=0.05, structure=structure, **extra),
                            free_p, 150)
    assert max(free) > 2 * kappa  # without the cap P runs away
    capped_p = torch.nn.Parameter(torch.zeros(4, 6))
    capped = correlated_steps(FOP([capped_p], lr=1e-3, hyper_lr=0.05, structure=structure,
                                  max_eigenvalue=kappa, **extra), capped_p, 150)
    assert max(capped) <= kappa * (1 + 1e-12)
    assert max(capped) > 0.5 * kappa  # the bound is not so loose that P cannot grow


def test_state_saved_before_the_variant_options_loads():
    net = make_mlp()
    opt = FOP(net.parameters(), lr=0.05, hyper_lr=1e-2)
    train(net, opt, 3)
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        del group["max_eigenvalue"], group["hyper_normalize"]
    again = FOP(net.parameters(), lr=0.05, hyper_lr=1e-2)
    again.load_state_dict(saved)
    assert again.param_groups[0]["max_eigenvalue"] is None
    train(net, again, 2)


@pytest.mark.parametrize(("structure", "extra"), [("full", {}), ("lowrank", {"rank": 2}),
                                                  ("scalar", {})])
def test_target_norm_hypergradient_is_autograd_derivative(structure, extra):
    """theta_t = theta_{t-1} - eta c(M) P(M) G_{t-1} with c = delta + (1 - delta) p_inf / lambda
    and lambda = v^T P(M) v for the optimizer's kept power vector v: its hypergradient is
    autograd's derivative of J(theta_t), and the step uses the new M, v and delta."""
    torch.manual_seed(1)
    p_inf, tau, eta, h = 2.5, 1.5, 0.02, 0.3
    p = torch.nn.Parameter(torch.randn(4, 6) * 0.5)
    opt = FOP([p], lr=eta, momentum=0.0, hyper_lr=h, hyper_optimizer="sgd",
              structure=structure, target_norm=p_inf, norm_delay=tau, **extra)
    for _ in range(3):  # two hyper-steps: delta < 1, so c depends on M
        before = p.detach().clone()
        p.grad = grad_at(p)
        opt.step()
    state = opt.state[p]
    t = state["fop_hyper_step"]
    assert t == 2
    delta = 1 / (1 + t / tau) ** 2
    v = state["fop_power_v"].clone()
    G_prev = state["fop_prev_grad"].T.clone()  # the rows are G^T
    kind = structure

    def applied(M: torch.Tensor, G: torch.Tensor, v: torch.Tensor, delta: float):
        P = {"full": lambda: M @ M.T, "lowrank": lambda: torch.eye(M.shape[0]) + M @ M.T,
             "scalar": lambda: M.square().reshape(()) * torch.eye(G.shape[0])}[kind]()
        lam = M.square().reshape(()) if kind == "scalar" else (v.T @ P @ v).reshape(())
        return (delta + (1 - delta) * p_inf / lam) * (P @ G)

    M = state["fop_M"].clone() + 0.3 * torch.randn_like(state["fop_M"])
    state["fop_M"].copy_(M)
    with torch.no_grad():
        p.copy_(before - eta * applied(M, G_prev, v, delta).T)
    Mv = M.clone().requires_grad_(True)
    H_ref = torch.autograd.grad(loss_fn(before - eta * applied(Mv, G_prev, v, delta).T), Mv)[0]

    theta = p.detach().clone()
    g = grad_at(p)
    p.grad = g.clone()
    opt.step()
    M_new = M - h * H_ref
    torch.testing.assert_close(state["fop_M"], M_new, rtol=1e-10, atol=1e-12)
    if kind != "scalar":  # one power iteration from the kept vector, on the new M
        w = M_new @ (M_new.T @ v)
        v = w / w.norm()
    torch.testing.assert_close(state["fop_power_v"], v, rtol=1e-10, atol=1e-12)
    delta = 1 / (1 + (t + 1) / tau) ** 2
    D = applied(M_new, matrix_view(g), v, delta).T
    torch.testing.assert_close(p.detach(), theta - eta * D, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("structure", "extra"), [("full", {}), ("lowrank", {"rank": 2})])
def test_target_norm_schedule_holds_under_correlated_gradients(structure, extra):
    """The effective P's spectral norm follows gamma(t) to p_inf while the free P runs away; the
    warm-started power iteration (one step per step) tracks P's largest eigenvalue."""
    p_inf = 4.0
    p = torch.nn.Parameter(torch.zeros(4, 6))
    opt = FOP([p], lr=1e-3, hyper_lr=0.05, structure=structure, target_norm=p_inf,
              norm_delay=5.0, **extra)
    largest = correlated_steps(opt, p, 200)
    state = opt.state[p]
    M, v = state["fop_M"], state["fop_power_v"]
    P = M @ M.T + (torch.eye(M.shape[0]) if structure == "lowrank" else 0)
    exact = torch.linalg.eigvalsh(P)[-1]
    estimate = (v.T @ P @ v).reshape(())
    assert float(exact) > 4 * p_inf  # P itself has grown: the schedule is doing the work
    assert abs(float(estimate / exact) - 1) < 1e-6  # the power iteration has converged
    assert largest[-1] == pytest.approx(p_inf, rel=0.02)  # delta(200) = 6e-4
    assert max(largest) < float(exact)


def test_target_norm_of_the_identity_with_zero_hyper_lr_is_the_base_optimizer():
    """P = I has norm 1, so the schedule towards 1 keeps it: SGD, up to the rounding of
    lambda = v^T v."""
    a, b = make_mlp(), make_mlp()
    train(a, FOP(a.parameters(), lr=0.05, momentum=0.9, hyper_lr=0.0, target_norm=1.0,
                 norm_delay=3.0), 20)
    train(b, torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9), 20)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-14)


def kronecker_factor(M: torch.Tensor, lowrank: bool) -> torch.Tensor:
    return M @ M.T + (torch.eye(M.shape[0]) if lowrank else 0)


@pytest.mark.parametrize("extra", [{}, {"max_full_dim": 5}, {"rank": 2},
                                   {"structure": "lowrank", "rank": 3, "hyper_normalize": True}])
def test_kronecker_hypergradients_are_autograd_derivatives(extra):
    """side="both": theta_1 = theta_0 - eta P_out(A) G_0 P_in(B) for a Linear weight G (out x in);
    step 2 moves B (fop_M) and A (fop_M_out) by autograd's derivatives of J(theta_1), then steps
    with D = P_out G_1 P_in from the new factors."""
    torch.manual_seed(2)
    shape, eta1, eta2, h = (4, 6), 0.03, 0.05, 0.4
    theta0 = torch.randn(shape) * 0.5
    p = torch.nn.Parameter(theta0.clone())
    opt = FOP([p], lr=eta1, momentum=0.0, hyper_lr=h, hyper_optimizer="sgd", side="both",
              **{"structure": "full", **extra})
    g0 = grad_at(p)
    p.grad = g0.clone()
    opt.step()
    state = opt.state[p]
    lowrank_in = extra.get("structure") == "lowrank" or "rank" in extra or "max_full_dim" in extra
    lowrank_out = extra.get("structure") == "lowrank" or "rank" in extra
    assert state["fop_M"].shape[0] == 6 and state["fop_M_out"].shape[0] == 4

    def step_of(B: torch.Tensor, A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        return kronecker_factor(A, lowrank_out) @ G @ kronecker_factor(B, lowrank_in)

    B = torch.randn_like(state["fop_M"]) * 0.5 + (0 if lowrank_in else torch.eye(6))
    A = torch.randn_like(state["fop_M_out"]) * 0.5 + (0 if lowrank_out else torch.eye(4))
    state["fop_M"].copy_(B)
    state["fop_M_out"].copy_(A)
    with torch.no_grad():
        p.copy_(theta0 - eta1 * step_of(B, A, g0))
    Bv, Av = B.clone().requires_grad_(True), A.clone().requires_grad_(True)
    HB, HA = torch.autograd.grad(loss_fn(theta0 - eta1 * step_of(Bv, Av, g0)), (Bv, Av))

    theta1 = p.detach().clone()
    g1 = grad_at(p)
    if extra.get("hyper_normalize"):
        HB, HA = HB / (g1.norm() * g0.norm()), HA / (g1.norm() * g0.norm())
    p.grad = g1.clone()
    opt.param_groups[0]["lr"] = eta2
    opt.step()
    torch.testing.assert_close(state["fop_M"], B - h * HB, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state["fop_M_out"], A - h * HA, rtol=1e-10, atol=1e-12)
    D = step_of(B - h * HB, A - h * HA, g1)
    torch.testing.assert_close(p.detach(), theta1 - eta2 * D, rtol=1e-10, atol=1e-12)


def test_kronecker_diagnostics_describe_the_kronecker_product():
    """P = P_out (x) P_in acting on the flattened weight: its eigenvalues, norm and angle are the
    dense Kronecker product's; the factors are shown as matrices, biases as with side='input'."""
    net = torch.nn.Linear(6, 4)
    opt = FOP(net.parameters(), lr=0.05, hyper_lr=0.05, side="both", max_full_dim=5)
    fit_to_zero(net, opt, steps=20)
    weight, bias = opt.diagnostics()
    assert bias.output is None and bias.panels() == [bias] and bias.matrix.shape == (4, 4)
    assert weight.structure == "lowrank" and weight.output.structure == "full"
    assert weight.panels() == [weight, weight.output]
    P_in, P_out = weight.matrix, weight.output.matrix
    assert P_in.shape == (6, 6) and P_out.shape == (4, 4)
    state = opt.state[net.weight]
    torch.testing.assert_close(P_in, kronecker_factor(state["fop_M"], True))
    torch.testing.assert_close(P_out, kronecker_factor(state["fop_M_out"], False))
    P = torch.kron(P_out, P_in)  # on the row-major flattened weight
    eigs = torch.linalg.eigvalsh(P)
    assert math.isclose(weight.eig_max, float(eigs.max()), rel_tol=1e-9)
    assert math.isclose(weight.eig_min, float(eigs.min()), rel_tol=1e-9)
    assert math.isclose(weight.frobenius_norm, float(P.norm()), rel_tol=1e-9)
    assert math.isclose(weight.output.eig_max, float(torch.linalg.eigvalsh(P_out).max()),
                        rel_tol=1e-9)
    g = state["fop_prev_grad"].reshape(-1)
    pg = P @ g
    cos = float(g @ pg / (g.norm() * pg.norm()))
    assert math.isclose(weight.angle_deg, math.degrees(math.acos(min(1.0, cos))), rel_tol=1e-9)
    assert weight.angle_deg > 0.1  # it learned


def _same(a, b) -> bool:
    """Equal to the bit: tensors, and the dicts and lists of a state_dict."""
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _train_native_and_python(**options) -> tuple[list, list]:
    """Two FOPs from the same net on the same gradients, C++ step and Python step, with a
    non-finite gradient at the fifth step."""
    nets = [make_mlp(), make_mlp()]
    if options.pop("groups", False):  # the first layer capped, the second not
        params = [lambda net: [{"params": net[0].parameters(), "max_eigenvalue": 1.1},
                               {"params": net[2].parameters()}]] * 2
    else:
        params = [lambda net: net.parameters()] * 2
    opts = [FOP(make(net), lr=0.05, hyper_lr=1e-2, native=native, **options)
            for net, native, make in zip(nets, (True, False), params, strict=True)]
    for net, opt in zip(nets, opts, strict=True):
        train(net, opt, 4)
        opt.zero_grad()
        net(torch.randn(4, 6, generator=torch.Generator().manual_seed(1))).sum().backward()
        net[0].weight.grad[0, 0] = float("nan")
        opt.step()
        train(net, opt, 4, seed=6)
    return nets, opts


@pytest.mark.parametrize("options", [
    {}, {"max_full_dim": 7}, {"rank": 2, "nesterov": True, "weight_decay": 1e-3},
    {"max_eigenvalue": 1.2}, {"hyper_normalize": True, "max_full_dim": 7},
    {"side": "both"}, {"side": "both", "max_full_dim": 7, "max_eigenvalue": 1.5},
    {"base": "adam", "weight_decay": 1e-3}, {"base": "adam", "hyper_normalize": True,
                                              "max_eigenvalue": 3.0, "rank": 2},
    {"groups": True}])
def test_native_step_is_the_python_step(options):
    """FOP's C++ step (fop_rl/optim/native.py) makes the Python step's calls: the same bits,
    for full, mixed and low-rank buckets, Kronecker factors, the eigenvalue cap,
    hyper_normalize, the Adam base and pools of two param groups (the policy cap: one group
    capped), with the non-finite step skipped alike."""
    nets, opts = _train_native_and_python(**options)
    assert all(pool.native is not None for pool in opts[0]._pools)
    assert all(pool.native is None for pool in opts[1]._pools)
    assert _same(list(nets[0].parameters()), list(nets[1].parameters()))
    assert _same(opts[0].state_dict()["state"], opts[1].state_dict()["state"])
    assert [d.nonfinite_skips for d in opts[0].diagnostics()] == [1, 0, 0, 0]
    if options.get("max_eigenvalue") is not None:  # the cap bit
        assert max(d.eig_max for d in opts[0].diagnostics()) <= options["max_eigenvalue"] + 1e-5


def test_native_step_without_a_compiler_steps_from_python(tmp_path):
    code = ("from tests.test_optim import _same, _train_native_and_python\n"
            "nets, opts = _train_native_and_python()\n"
            "print(opts[0]._pools[0].native is None, "
            "_same(list(nets[0].parameters()), list(nets[1].parameters())))\n")
    env = {**os.environ, "CXX": str(tmp_path / "no-compiler"), "CC": str(tmp_path / "no-cc"),
           "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions")}  # no build to reuse
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True"]
    notes = [line for line in result.stderr.splitlines() if "C++ step" in line]
    assert [note.split(" (")[0] for note in notes] == [
        "note: building FOP's C++ step", "note: FOP's C++ step could not be built"]
    assert "no-compiler: not found" in notes[1]
    assert "Traceback" not in result.stderr


def test_native_build_survives_a_ctrl_c_and_a_killed_builder(tmp_path):
    """The C++ step's build, Ctrl-C'd at its note, finishes for the next start, which loads it;
    a start after a builder killed mid-build (torch's lock left in the folder) loads without
    waiting; a different compiler is a build configuration of its own."""
    import signal
    import time
    from pathlib import Path

    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions")}
    start = [sys.executable, "-c", "from fop_rl.optim import native\n"
             "print(native.extension() is not None, native.build_directory())"]
    first = subprocess.Popen(start, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
    note = first.stderr.readline()
    assert "note: building FOP's C++ step" in note
    folder = Path(note.split("kept in ", 1)[1].rstrip(")\n"))
    time.sleep(1.0)
    os.killpg(first.pid, signal.SIGINT)  # a Ctrl-C reaches the run's whole process group
    assert first.wait(timeout=60) != 0
    deadline = time.monotonic() + 600
    while not (folder / "fop_rl_native_step.so").exists():  # the build goes on without it
        assert time.monotonic() < deadline
        time.sleep(1.0)
    second = subprocess.run(start, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.split() == ["True", str(folder)], second.stderr
    (folder / "lock").write_text("")  # what torch's builder leaves when killed mid-build
    third = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert third.stdout.split() == ["True", str(folder)] and "note" not in third.stderr
    other = subprocess.run([sys.executable, "-c", "from fop_rl.optim import native\n"
                            "print(native.build_directory())"], capture_output=True, text=True,
                           env={**env, "CXX": "g++"}, timeout=120)
    assert other.stdout.strip() not in ("", str(folder))


@pytest.mark.parametrize("options", [{"structure": "full"}, {"structure": "full", "rank": 2},
                                     {"structure": "diagonal"}])
def test_reset_preconditioners_starts_fop_afresh_and_keeps_the_base_momentum(options):
    """After a reset, FOP goes on exactly as a new FOP would whose base optimizer had the old
    one's momentum: the same steps from the same gradients."""
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(4, 5)), torch.nn.Parameter(torch.randn(4))]
    grads = [[torch.randn_like(p) for p in weights] for _ in range(6)]

    def run(opt, params, steps):
        for g in steps:
            for p, gp in zip(params, g, strict=True):
                p.grad = gp.clone()
            opt.step()

    kwargs = dict(lr=0.05, momentum=0.9, hyper_lr=1e-2, **options)
    old = FOP(weights, **kwargs)
    run(old, weights, grads[:3])
    learned = [s["fop_M"].clone() for s in old.state.values()]
    fresh_params = [torch.nn.Parameter(p.detach().clone()) for p in weights]
    fresh = FOP(fresh_params, **kwargs)
    old.reset_preconditioners()
    for p, q in zip(weights, fresh_params, strict=True):  # the base's momentum carried over
        momentum = old.state[p]["base"]["momentum_buffer"]
        fresh.state[q]["base"] = {"momentum_buffer": momentum.clone()}
    run(old, weights, grads[3:4])
    run(fresh, fresh_params, grads[3:4])
    # M was learned, and is back at its start (one step from it: no hypergradient yet)
    assert all(not torch.equal(m, s["fop_M"]) for m, s in zip(learned, old.state.values(),
                                                              strict=True))
    run(old, weights, grads[4:])
    run(fresh, fresh_params, grads[4:])
    for p, q in zip(weights, fresh_params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
        assert old.state[p]["fop_hyper_step"] == fresh.state[q]["fop_hyper_step"]
