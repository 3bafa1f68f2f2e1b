"""Sweeps for real: processes, interruption and re-run, a failing run, Ray."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fop_rl import rundir
from fop_rl.config import ConfigError
from fop_rl.sweep import parse_seeds
from tests.conftest import TINY, run_cli

ENV = "BipedalWalker-v3"


def sweep_args(runs_dir: Path, optimizers=("momentum", "fop-momentum"), seeds="0-1",
               timesteps=512) -> list[str]:
    args = ["sweep", "--optimizers", *optimizers, "--seeds", seeds, "--timesteps",
            str(timesteps), "--jobs", "2", "--runs-dir", str(runs_dir)]
    for item in TINY:
        args += ["--set", item]
    return args


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("5, 0-1") == [0, 1, 5]
    for bad in ("", "a-b", "3-1", "-1"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_sweep_runs_every_pair_and_skips_them_next_time(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, *sweep_args(runs))
    assert code == 0, out + err
    for optimizer in ("momentum", "fop-momentum"):
        for seed in (0, 1):
            run_dir = runs / ENV / optimizer / f"seed-{seed}"
            assert rundir.read_status(run_dir)["status"] == "complete"
            assert (run_dir / "evaluations.npz").exists()
            assert (runs / "logs" / ENV / optimizer / f"seed-{seed}.log").exists()
    model = runs / ENV / "momentum" / "seed-0" / "model.zip"
    stamp = model.stat().st_mtime_ns
    code, out, _ = run_cli(capsys, *sweep_args(runs))
    assert code == 0 and "4 complete, skipped" in out
    assert model.stat().st_mtime_ns == stamp


def test_interrupted_sweep_finishes_on_rerun(tmp_path: Path, capsys):
    import subprocess

    runs = tmp_path / "runs"
    args = sweep_args(runs, optimizers=("momentum",), seeds="0-2", timesteps=1536)
    proc = subprocess.Popen([sys.executable, "-m", "fop_rl.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = runs / ENV / "momentum" / "seed-0"
    deadline = time.monotonic() + 240
    while rundir.latest_checkpoint(first) is None and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # as Ctrl-C: the runs, processes of their own, stop too
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    statuses = [(rundir.read_status(runs / ENV / "momentum" / f"seed-{s}") or {}).get("status")
                for s in range(3)]
    assert statuses[0] == "interrupted"  # it had a checkpoint when the sweep was stopped
    done = statuses.count("complete")  # a neighbour may have finished first on a fast machine

    code, out, err = run_cli(capsys, *args)
    assert code == 0, out + err
    summary = out.split("(")[1]
    assert summary.startswith(f"{done} complete, skipped; ")
    assert int(summary.split("skipped; ")[1].split(" to resume")[0]) >= 1
    for seed in range(3):
        run_dir = runs / ENV / "momentum" / f"seed-{seed}"
        status = rundir.read_status(run_dir)
        assert status["status"] == "complete" and status["timesteps_done"] >= 1536
        with np.load(run_dir / "evaluations.npz") as ev:
            assert ev["timesteps"].tolist() == [512, 1024, 1536]


def test_failing_run_is_reported_and_others_complete(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    blocker = runs / ENV / "momentum" / "seed-1"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the run directory should be")
    code, out, _ = run_cli(capsys, *sweep_args(runs, optimizers=("momentum",)))
    assert code == 1
    log = runs / "logs" / ENV / "momentum" / "seed-1.log"
    assert "FAILED momentum seed 1" in out and str(log) in out and log.exists()
    assert rundir.read_status(runs / ENV / "momentum" / "seed-0")["status"] == "complete"
    assert blocker.read_text().startswith("a file")  # nothing overwritten


def test_bad_sweep_input_starts_nothing(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, *sweep_args(runs, optimizers=("momentum", "sgd-nope")))
    assert code == 2 and err.startswith("error:") and "sgd-nope" in err
    code, _, err = run_cli(capsys, *sweep_args(runs), "--set", "ppo.n_epochs=0")
    assert code == 2 and "ppo.n_epochs" in err
    assert not runs.exists()


def test_ray_backend_produces_the_same_layout(tmp_path: Path, capsys):
    pytest.importorskip("ray")
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, *sweep_args(runs, optimizers=("fop-momentum",)),
                             "--backend", "ray")
    assert code == 0, out + err
    for seed in (0, 1):
        run_dir = runs / ENV / "fop-momentum" / f"seed-{seed}"
        assert rundir.read_status(run_dir)["status"] == "complete"
        with np.load(run_dir / "evaluations.npz") as ev:
            assert ev["timesteps"].tolist() == [512]
