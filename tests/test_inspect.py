"""fop-rl inspect: the learned preconditioners of a run, drawn and tabled (the paper's figure 5)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli, tiny_args
from tests.test_sweep import sweep_args

ENV = "BipedalWalker-v3"


def test_inspect_draws_and_prints_the_preconditioners(trained_run: Path, tmp_path: Path,
                                                      capsys):
    out = tmp_path / "p.png"
    code, stdout, err = run_cli(capsys, "inspect", trained_run, "--out", out)
    assert code == 0, err
    assert "mlp_extractor.policy_net.0.weight" in stdout and "cond" in stdout
    assert out.stat().st_size > 10_000


def test_inspect_shows_both_factors_of_kronecker_fop(tmp_path: Path, capsys):
    run_dir = tmp_path / "kron"
    code, _, err = run_cli(capsys, "train", "--optimizer", "fop-kron-momentum", "--timesteps",
                           "512", "--run-dir", run_dir, *tiny_args())
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "inspect", run_dir, "--model", "last")
    assert code == 0, err
    for layer in ("mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.0.weight.P_out",
                  "action_net.weight.P_out"):
        assert f"\n{layer} " in stdout, layer
    assert (run_dir / "preconditioners.png").stat().st_size > 10_000


def test_inspect_without_preconditioner_is_an_error(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    assert run_cli(capsys, *sweep_args(runs, optimizers=("momentum",), seeds="0"))[0] == 0
    code, _, err = run_cli(capsys, "inspect", runs / ENV / "momentum" / "seed-0")
    assert code == 2 and "learns no preconditioner" in err and err.count("\n") == 1


def test_preconditioner_figure_is_readable():
    """Each row named in full inside the figure; a log axis only with several tick labels;
    axis labels on the histogram and the eigenvalues; a 1 x 1 P in words, no empty axes."""
    import torch

    from fop_rl.optim import FOP
    from fop_rl.plots import preconditioner_summary

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = FOP(net.parameters(), lr=0.05, hyper_lr=1e-2)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    fig = preconditioner_summary(opt.diagnostics(net.named_parameters()))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    rows = fig.subfigs
    assert [row._suptitle.get_text() for row in rows] == ["0.weight", "0.bias", "2.weight",
                                                          "2.bias"]
    width = fig.bbox.width
    for text in [row._suptitle for row in rows] + [ax.title for ax in fig.get_axes()]:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width, text.get_text()
    scalar = rows[3].axes  # 2.bias: P is 1 x 1
    assert not any(ax.axison for ax in scalar)
    for row in rows[:3]:
        _, hist, eig = row.axes[:3]  # then the colour bar
        assert hist.get_xlabel() and hist.get_ylabel() and eig.get_xlabel() and eig.get_ylabel()
        for ax in (hist, eig):
            if ax.get_yscale() != "linear":
                low, high = ax.get_ylim()
                shown = [t for t in ax.get_yticks() if low <= t <= high]
                assert len(shown) >= 2, (row._suptitle.get_text(), shown)
