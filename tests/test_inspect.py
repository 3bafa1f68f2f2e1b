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
