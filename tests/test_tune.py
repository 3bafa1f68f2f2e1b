"""`fop-rl tune`: real, tiny Optuna studies on an embedded journal file or SQLite."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from fop_rl import rundir
from tests.conftest import TINY, kill_tune_mid_trial, processes_of, run_cli

ENV = "BipedalWalker-v3"


def tune_args(runs: Path, *extra: str, trials: int = 2, timesteps: int = 1024) -> list[str]:
    args = ["tune", "--optimizer", "momentum", "--trials", str(trials), "--timesteps",
            str(timesteps), "--seeds", "100", "--jobs", "2", "--runs-dir", str(runs)]
    for item in TINY:
        args += ["--set", item]
    return [*args, *extra]


def trials_csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_study_writes_every_output_and_continues(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    folder = runs / "tune" / ENV / "momentum"
    code, out, err = run_cli(capsys, *tune_args(runs, "--pruner", "none"))
    assert code == 0, out + err
    for name in ("best.yaml", "trials.csv", "history.png", "importance.png", "study.journal"):
        assert (folder / name).exists(), name
    rows = trials_csv(folder)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert all(float(r["objective"]) < 0 and r["lr"] and r["momentum"] for r in rows)
    assert rundir.read_status(folder / "trial-0" / "seed-100")["status"] == "complete"
    assert "best trials" in out and "best.yaml" in out
    # the best trial's values, in a config that trains as it is
    best = yaml.safe_load((folder / "best.yaml").read_text())
    top = max(rows, key=lambda r: float(r["objective"]))
    assert best["optimizers"]["momentum"]["lr"] == pytest.approx(float(top["lr"]))
    assert best["training"]["optimizer"] == "momentum"
    code, _, err = run_cli(capsys, "train", "--config", folder / "best.yaml", "--timesteps",
                           "256", "--run-dir", tmp_path / "best-run", "--no-progress")
    assert code == 0, err
    # a larger --trials adds to the same study
    code, out, err = run_cli(capsys, *tune_args(runs, "--pruner", "none", trials=3))
    assert code == 0, out + err
    assert "2 of 3 trials finished" in out
    assert [r["number"] for r in trials_csv(folder)] == ["0", "1", "2"]


def test_sqlite_storage_url(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    code, out, err = run_cli(capsys, *tune_args(tmp_path / "runs", "--storage", url,
                                                "--study-name", "walker", trials=1))
    assert code == 0, out + err
    study = optuna.load_study(study_name="walker", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


def test_pruner_stops_a_trial_that_is_clearly_behind(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    folder = runs / "tune" / ENV / "momentum"
    folder.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "study.journal")))
    study = optuna.create_study(storage=storage, study_name=f"{ENV}-momentum",
                                direction="maximize")
    distributions = {"lr": optuna.distributions.FloatDistribution(3e-4, 3e-2, log=True),
                     "momentum": optuna.distributions.FloatDistribution(0.8, 0.99)}
    for _ in range(5):  # five walkers that already score 300 at every evaluation
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 2e-3, "momentum": 0.9}, distributions=distributions, value=300.0,
            intermediate_values={step: 300.0 for step in range(512, 3073, 512)}))
    # a budget of six evaluations: the pruner may act from the second third (1024 steps), so
    # the trial is stopped well before its end however busy the machine is
    code, out, err = run_cli(capsys, *tune_args(runs, "--pruner", "median", trials=6,
                                                timesteps=3072))
    assert code == 0, out + err
    last = trials_csv(folder)[-1]
    assert last["state"] == "PRUNED" and int(last["last_step"]) < 3072
    assert "trial 5 pruned" in out


def test_a_diverging_trial_fails_with_its_reason(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, *tune_args(
        runs, "--pruner", "none", "--set", "search.momentum={lr: {choices: [1.0e+8]}}",
        trials=1))
    assert code == 1 and "failed" in out + err
    row = trials_csv(runs / "tune" / ENV / "momentum")[0]
    assert row["state"] == "FAIL" and row["fail_reason"].startswith("seed 100:")


def test_a_trial_whose_tune_process_died_is_not_counted(tmp_path: Path):
    runs = tmp_path / "runs"
    folder = runs / "tune" / ENV / "momentum"
    argv = [sys.executable, "-m", "fop_rl.cli", *tune_args(runs, "--pruner", "none",
                                                           trials=1, timesteps=8192)]
    kill_tune_mid_trial(argv, folder)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)  # the same again
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trial 0 was left running" in result.stdout
    rows = trials_csv(folder)
    assert [r["state"] for r in rows] == ["FAIL", "COMPLETE"]
    assert "died" in rows[0]["fail_reason"]


def test_a_stopped_study_is_consistent(tmp_path: Path):
    runs = tmp_path / "runs"
    folder = runs / "tune" / ENV / "momentum"
    argv = [sys.executable, "-m", "fop_rl.cli", *tune_args(runs, "--pruner", "none",
                                                           trials=1, timesteps=8192)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_json = folder / "trial-0" / "seed-100" / "run.json"
    deadline = time.monotonic() + 120
    while not run_json.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # as Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again" in err
    row = trials_csv(folder)[0]
    assert row["state"] == "FAIL" and row["fail_reason"] == "interrupted"
    assert not processes_of(folder / "trial-0")  # its runs were stopped, not orphaned


@pytest.mark.parametrize(("setting", "message"), [
    ("search.momentum.lr={low: 1.0e-2, high: 1.0e-3}", "search.momentum.lr low (0.01) must be"),
    ("search.momentum.nesterov={low: 0, high: 1}", "search.momentum.nesterov is not an option"),
    ("search.momentum.lr={low: 0.0, high: 1.0, log: true}", "search.momentum.lr must be > 0"),
    ("search.momentum.momentum={low: -0.5, high: 0.9, log: true}",
     "search.momentum.momentum must be in [0, 1)"),
])
def test_bad_search_space_is_a_one_line_error(tmp_path: Path, capsys, setting, message):
    code, _, err = run_cli(capsys, *tune_args(tmp_path / "runs", "--set", setting))
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "runs").exists()
