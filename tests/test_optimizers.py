"""Any torch optimizer by import path: torch's own and a user's module, through train, resume,
evaluate, a plain PPO.load, sweep and report; bad names and options as one-line errors;
schedule-free optimizers' two sets of weights."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO

from fop_rl import config, rundir
from fop_rl.checkpoints import load_checkpoint
from fop_rl.modes import to_train_mode
from tests.conftest import TINY, run_cli, tiny_args

ENV = "BipedalWalker-v3"
ADAMW = "torch.optim:AdamW"
# a user's optimizer in a module of their own: the sign of the gradient, scaled
SIGN_SGD = textwrap.dedent('''
    import torch

    class SignSGD(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, scale=1.0):
            super().__init__(params, dict(lr=lr, scale=scale))

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad.sign(), alpha=-group["lr"] * group["scale"])
''')


def test_torch_adamw_by_import_path_trains_resumes_evaluates_and_loads(tmp_path: Path, capsys,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--optimizer", ADAMW, "--timesteps", "1024",
                           "--set", f"optimizers.{ADAMW}.weight_decay=0.05", *tiny_args())
    assert code == 0, err
    run_dir = Path("runs") / ENV / "torch.optim.AdamW" / "seed-0"  # no colon in a folder
    status = rundir.read_status(run_dir)
    assert status["optimizer"] == ADAMW and status["optimizer_class"] == "torch.optim.adamw:AdamW"
    # lr left out: AdamW's own default
    assert status["optimizer_kwargs"] == {"lr": 1e-3, "weight_decay": 0.05}
    assert rundir.read_config(run_dir)["optimizers"][ADAMW] == {"weight_decay": 0.05, "lr": 1e-3}
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--timesteps",
                           "2048", "--no-progress")
    assert code == 0, err
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--episodes", "2", "--json")
    assert code == 0 and len(json.loads(out)["returns"]) == 2, err
    model = PPO.load(run_dir / "model.zip")  # plain SB3, nothing of fop-rl's
    optimizer = model.policy.optimizer
    assert type(optimizer) is torch.optim.AdamW and model.num_timesteps == 2048
    assert optimizer.param_groups[0]["weight_decay"] == 0.05
    assert optimizer.state  # the resumed run's moments, saved in the zip


def test_a_users_own_optimizer_sweeps_and_reports(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "my_optimizers.py").write_text(SIGN_SGD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the sweep's runs are processes
    runs = tmp_path / "runs"
    name = "my_optimizers:SignSGD"
    args = ["sweep", "--optimizers", name, "momentum", "--seeds", "0-1", "--timesteps", "512",
            "--jobs", "2", "--runs-dir", runs, "--set", f"optimizers.{name}.scale=0.5"]
    for item in TINY:
        args += ["--set", item]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, out + err
    for seed in (0, 1):
        run_dir = runs / ENV / "my_optimizers.SignSGD" / f"seed-{seed}"
        assert rundir.read_status(run_dir)["status"] == "complete"
        assert rundir.read_status(run_dir)["optimizer_kwargs"] == {"lr": 1e-3, "scale": 0.5}
        assert (runs / "logs" / ENV / "my_optimizers.SignSGD" / f"seed-{seed}.log").exists()
    model = PPO.load(runs / ENV / "my_optimizers.SignSGD" / "seed-0" / "model.zip")
    assert type(model.policy.optimizer).__name__ == "SignSGD"
    code, _, err = run_cli(capsys, "report", runs, "--out", tmp_path / "report", "--reps", "200",
                           "--baseline", "momentum")
    assert code == 0, err
    assert "my_optimizers.SignSGD" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [([f"training.optimizer={ADAMW}", f"optimizers.{ADAMW}.wd=0.1"],
      f"--set optimizers.{ADAMW}.wd=0.1: unknown key optimizers.{ADAMW}.wd (known: lr, betas,"),
     ([f"training.optimizer={ADAMW}", f"optimizers.{ADAMW}.betas=[2, 0.9]"],
      "AdamW refuses these options or PPO's parameters (ValueError: Invalid beta parameter"),
     ([f"training.optimizer={ADAMW}", f"optimizers.{ADAMW}.lr=-1"], "lr must be > 0"),
     (["training.optimizer=no_such_package.optim:Fast"],
      "no_such_package is not installed (pip install no_such_package"),
     (["training.optimizer=torch.optim:Nope"], "torch.optim has no Nope"),
     (["training.optimizer=collections:OrderedDict"], "is not a torch.optim.Optimizer subclass"),
     (["training.optimizer=torch.optim.AdamW"], "or a torch optimizer's import path"),
     # Muon steps matrices only: PPO's biases and log-std need another optimizer
     (["training.optimizer=torch.optim:Muon"], "Muon refuses these options or PPO's parameters"),
     ([f"training.optimizer={ADAMW}"], None)],
)
def test_bad_import_paths_and_options_are_one_error_line(overrides, message, capsys, tmp_path):
    args = ["train", "--run-dir", tmp_path / "x"]
    for item in overrides:
        args += ["--set", item]
    if message is None:
        config.load(None, None, overrides)
        return
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "x").exists()


def test_a_search_space_for_an_import_path_is_checked_against_its_class(tmp_path: Path):
    base = (Path(config.__file__).parent / "configs" / "bipedal_walker.yaml").read_text()
    path = tmp_path / "walker.yaml"
    path.write_text(base + textwrap.dedent(f'''
        search:
          "{ADAMW}":
            lr: {{low: 1.0e-5, high: 1.0e-3, log: true}}
            weight_decay: {{choices: [0.0, 0.01]}}
    '''))
    cfg = config.load(path, None, [f"training.optimizer={ADAMW}"])
    assert set(cfg["search"][ADAMW]) == {"lr", "weight_decay"}
    # tune sets a trial's values by --set, the import path as one key
    config.set_key(cfg, f"search.{ADAMW}.lr.low=2.0e-5", source="--set")
    assert cfg["search"][ADAMW]["lr"]["low"] == 2e-5
    path.write_text(path.read_text().replace("weight_decay: {choices", "decay: {choices"))
    with pytest.raises(config.ConfigError, match=rf"search.{ADAMW}.decay is not an option"):
        config.load(path, None, [])


def _state_of(model: PPO, key: str) -> list[torch.Tensor]:
    optimizer = model.policy.optimizer
    return [optimizer.state[p][key] for p in model.policy.parameters()]


def test_schedule_free_runs_save_the_averaged_weights_and_resume_where_they_trained(
        tmp_path: Path, capsys):
    """schedulefree's reference AdamW keeps its average x and its training point y as state of
    their own: every model on disk holds x, and a resumed run trains from y again."""
    name = "schedulefree:AdamWScheduleFreeReference"
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--optimizer", name, "--timesteps", "1024",
                           "--run-dir", run_dir, "--set", "training.keep_checkpoints=0",
                           *tiny_args())
    assert code == 0, err
    saved = [run_dir / "model.zip", run_dir / "best_model.zip",
             *sorted((run_dir / "checkpoints").glob("step-*/model.zip"))]
    assert len(saved) == 4
    for path in saved:
        model = PPO.load(path)
        assert not model.policy.optimizer.param_groups[0]["train_mode"]  # saved evaluated
        for p, x in zip(model.policy.parameters(), _state_of(model, "x"), strict=True):
            assert torch.equal(p, x)
        assert any(not torch.equal(x, y) for x, y in zip(_state_of(model, "x"),
                                                          _state_of(model, "y"), strict=True))
    # resumed: the optimizer's sequence goes on from its training point
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "step-1024", PPO)
    to_train_mode(checkpoint.model)
    for p, y in zip(checkpoint.model.policy.parameters(), _state_of(checkpoint.model, "y"),
                    strict=True):
        assert torch.equal(p, y)
    steps = checkpoint.model.policy.optimizer.param_groups[0]["k"]
    assert steps == 4 * 2 * 4  # rollouts x epochs x minibatches
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--timesteps",
                           "2048", "--no-progress")
    assert code == 0, err
    assert PPO.load(run_dir / "model.zip").policy.optimizer.param_groups[0]["k"] == 2 * steps


def test_schedule_free_adamw_trains_resumes_and_evaluates(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--optimizer", "schedulefree:AdamWScheduleFree",
                           "--timesteps", "1024", "--run-dir", run_dir, *tiny_args())
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--timesteps",
                           "1536", "--no-progress")
    assert code == 0, err
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--episodes", "2", "--json")
    assert code == 0 and len(json.loads(out)["returns"]) == 2, err
    assert not PPO.load(run_dir / "model.zip").policy.optimizer.param_groups[0]["train_mode"]


def test_a_packaged_name_whose_library_is_missing_says_what_to_install(monkeypatch, capsys,
                                                                       tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "prodigyopt" else find_spec(name, *a))
    code, _, err = run_cli(capsys, "train", "--optimizer", "prodigy", "--run-dir", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1
    assert "prodigy needs prodigyopt: pip install prodigyopt" in err
    config.load(None, None, ["training.optimizer=adamw"])  # torch's own: nothing to install
