"""A run's record under faults: SIGKILL at random moments and resume, damaged checkpoints,
sources and run files (one-line errors, nothing overwritten), stale runs of dead processes."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fop_rl import rundir
from fop_rl.saved import load_stats
from tests.conftest import cli_subprocess, run_cli, tiny_args

MOMENTUM = ["--optimizer", "momentum"]  # the fastest step: the faults, not FOP, are tested


def file_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str, *parts: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, (part, err)


def progress_rows(run_dir: Path) -> list[tuple[int, bool]]:
    """(step, is an evaluation's row) of each row of progress.csv: SB3 dumps a row after each
    rollout and one after each evaluation, at the same step."""
    with open(run_dir / "tb" / "progress.csv") as f:
        return [(int(float(r["time/total_timesteps"])), bool(r.get("eval/mean_reward")))
                for r in csv.DictReader(f)]


def training(proc, run_dir: Path, timeout: float = 180) -> bool:
    """Wait until ``proc`` has started training the run (run.json names it); False if it ended
    first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(rundir.RunError):
            if (rundir.read_status(run_dir) or {}).get("pid") == proc.pid:
                return True
        time.sleep(0.05)
    raise AssertionError(f"the run did not start within {timeout} s")


def test_sigkill_at_random_moments_then_resume_leaves_one_consistent_record(tmp_path: Path):
    run_dir, total = tmp_path / "run", 12288
    rng = random.Random(7)
    proc = cli_subprocess("train", "--run-dir", run_dir, "--timesteps", total, *MOMENTUM,
                          *tiny_args())
    started, kills = None, 0
    for _ in range(4):  # SIGKILL: nothing runs on the way out, as in a power cut
        if not training(proc, run_dir):
            break  # the run ended before this kill
        # once the process has started the run (its pid in run.json), a random moment of
        # rollouts, updates, evaluations or checkpoint writes
        time.sleep(rng.uniform(0.5, 5.0))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        kills += 1
        started = started or rundir.read_status(run_dir)["started"]
        proc = cli_subprocess("train", "--run-dir", run_dir, "--resume", "--no-progress")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert kills >= 2

    status = rundir.read_status(run_dir)
    assert status["status"] == "complete" and status["started"] == started
    assert len(status["resumes"]) == kills
    assert all(r["checkpoint"] is None or r["checkpoint"] == f"step-{r['step']}"
               for r in status["resumes"])
    rows = progress_rows(run_dir)
    assert len(rows) == len(set(rows)), "a row logged twice"
    steps = [step for step, _ in rows]
    assert steps == sorted(steps) and steps[-1] >= total
    with np.load(run_dir / "evaluations.npz") as ev:  # every evaluation, once, in order
        assert ev["timesteps"].tolist() == list(range(512, total + 1, 512))
    assert [s for s, evaluation in rows if evaluation] == list(range(512, total + 1, 512))
    acc = EventAccumulator(str(run_dir / "tb"))  # all segments' files, as TensorBoard reads
    acc.Reload()
    tb_steps = [e.step for e in acc.Scalars("time/fps")]
    assert tb_steps == sorted(set(tb_steps)) and tb_steps[-1] >= total
    monitor = (run_dir / "monitor" / "envpool.monitor.csv").read_text().splitlines()
    assert monitor[0].startswith("#{") and monitor[1] == "r,l,t"
    assert all(not line.startswith("#") and line.count(",") == 2 for line in monitor[2:])
    clock = [float(line.split(",")[2]) for line in monitor[2:]]
    assert clock == sorted(clock)  # t counts from the first process's start in every segment
    assert PPO.load(run_dir / "model.zip", device="cpu").num_timesteps >= total
    assert isinstance(load_stats(run_dir / "vecnormalize.pkl"), VecNormalize)
    assert json.loads((run_dir / "final_evaluation.json").read_text())["episodes"] == 2


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    """A momentum run stopped by SIGTERM after at least two checkpoints, shared read-only."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    proc = cli_subprocess("train", "--run-dir", run_dir, "--timesteps", 20480, *MOMENTUM,
                          *tiny_args())
    deadline = time.monotonic() + 180
    while len(list((run_dir / "checkpoints").glob("step-*"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert rundir.read_status(run_dir)["status"] == "interrupted"
    return run_dir


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name.removeprefix("step-"))
                  for p in (run_dir / "checkpoints").glob("step-*"))


def test_resume_skips_a_damaged_latest_checkpoint(interrupted_run: Path, tmp_path: Path,
                                                  capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted_run, run_dir)
    older, latest = checkpoint_steps(run_dir)
    model = run_dir / "checkpoints" / f"step-{latest}" / "model.zip"
    os.truncate(model, 500)
    code, out, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    assert f"note: skipped checkpoint step-{latest}: {model}" in err
    assert f"resuming {run_dir} from step {older} (checkpoints/step-{older})" in out
    status = rundir.read_status(run_dir)
    assert status["status"] == "complete" and status["resumes"][-1]["step"] == older


def test_resume_with_no_loadable_checkpoint_is_an_error_that_changes_nothing(
        interrupted_run: Path, tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted_run, run_dir)
    older, latest = checkpoint_steps(run_dir)
    os.truncate(run_dir / "checkpoints" / f"step-{latest}" / "model.zip", 500)
    (run_dir / "checkpoints" / f"step-{older}" / "vecnormalize.pkl").write_bytes(b"garbage")
    before = file_digests(run_dir)
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume")
    one_error_line(err, "no checkpoint loads", f"step-{latest}", f"step-{older}",
                   "vecnormalize.pkl", "--force")
    assert code == 2 and file_digests(run_dir) == before


def test_resume_of_a_run_killed_before_its_first_checkpoint_trains_it_from_zero(
        trained_run: Path, tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(trained_run / "config.yaml", run_dir)
    rundir.write_status(run_dir, status="running", started="2026-01-01T00:00:00",
                        **rundir.process() | {"pid": 2**22 + 17})  # no such process
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    assert "stopped before its first checkpoint: training it from step 0" in err
    status = rundir.read_status(run_dir)
    assert status["status"] == "complete" and status["started"] == "2026-01-01T00:00:00"
    assert status["resumes"][0]["step"] == 0 and status["resumes"][0]["checkpoint"] is None


def test_a_running_run_whose_process_is_gone_is_called_stopped(trained_run: Path,
                                                               tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    rundir.write_status(run_dir, status="running", **rundir.process() | {"pid": 2**22 + 17})
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, *tiny_args())
    one_error_line(err, f"status: stopped: its process {2**22 + 17} is gone", "--resume")
    assert code == 2


def test_complete_run_has_nothing_to_resume(trained_run: Path, capsys):
    before = file_digests(trained_run)
    code, _, err = run_cli(capsys, "train", "--run-dir", trained_run, "--resume")
    one_error_line(err, "is complete (1024 steps): nothing to resume", "--timesteps N")
    assert code == 2 and file_digests(trained_run) == before
    code, _, err = run_cli(capsys, "train", "--run-dir", trained_run, "--resume",
                           "--timesteps", "512")
    one_error_line(err, "has done 1024 steps: --timesteps must be at least that", "512")
    assert code == 2 and file_digests(trained_run) == before


def test_resume_with_timesteps_extends_a_complete_run(trained_run: Path, tmp_path: Path,
                                                       capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    first_final = (run_dir / rundir.FINAL_EVALUATION).read_text()
    code, out, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume",
                             "--timesteps", "1.536e3", "--no-progress")
    assert code == 0, err
    assert "resuming" in out and "from step 1024" in out
    config_now = rundir.read_config(run_dir)
    assert config_now["training"]["total_timesteps"] == 1536
    status = rundir.read_status(run_dir)
    assert status["status"] == "complete" and status["timesteps_done"] == 1536
    assert status["resumes"][-1]["total_timesteps"] == {"from": 1024, "to": 1536}
    # the shorter run's final evaluation is kept; the new one is the longer run's
    assert (run_dir / "final_evaluation-1024.json").read_text() == first_final
    assert json.loads((run_dir / rundir.FINAL_EVALUATION).read_text()) != json.loads(first_final)


def test_damaged_init_from_source_leaves_no_run(trained_run: Path, tmp_path: Path, capsys):
    source = tmp_path / "source"
    shutil.copytree(trained_run, source)
    os.truncate(source / "best_vecnormalize.pkl", 100)
    target = tmp_path / "new"
    code, _, err = run_cli(capsys, "train", "--init-from", source, "--run-dir", target,
                           *tiny_args())
    one_error_line(err, "--init-from", str(source / "best_vecnormalize.pkl"))
    assert code == 2 and not target.exists()
    code, _, err = run_cli(capsys, "train", "--init-from", tmp_path / "nowhere",
                           "--run-dir", target, *tiny_args())
    one_error_line(err, "--init-from: run directory", "does not exist")


@pytest.mark.parametrize(("damage", "named"), [
    (lambda run: os.truncate(run / "best_vecnormalize.pkl", 100), "best_vecnormalize.pkl"),
    (lambda run: os.truncate(run / "best_model.zip", 500), "best_model.zip"),
    (lambda run: (run / "config.yaml").write_text("env: [unclosed"), "config.yaml"),
    (lambda run: (run / "config.yaml").write_text("- a list\n"), "config.yaml"),
])
def test_evaluate_and_render_a_damaged_run_are_one_line_errors(trained_run: Path,
                                                               tmp_path: Path, capsys, damage,
                                                               named: str):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    damage(run_dir)
    before = file_digests(run_dir)
    for argv in (["evaluate", run_dir, "--episodes", "1"],
                 ["render", run_dir, "--out", tmp_path / "x.gif"]):
        code, _, err = run_cli(capsys, *argv)
        one_error_line(err, str(run_dir / named))
        assert code == 2
    assert file_digests(run_dir) == before and not (tmp_path / "x.gif").exists()


def test_a_damaged_run_json_is_an_error_and_left_alone(trained_run: Path, tmp_path: Path,
                                                      capsys):
    run_dir = tmp_path / "runs" / "BipedalWalker-v3" / "fop-momentum" / "seed-3"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "run.json").write_text('{"status": "runn')
    before = file_digests(run_dir)
    for argv in (["train", "--run-dir", run_dir, "--resume"],
                 ["train", "--run-dir", run_dir, *tiny_args()]):
        code, _, err = run_cli(capsys, *argv)
        one_error_line(err, str(run_dir / "run.json"))
        assert code == 2
    code, _, err = run_cli(capsys, "report", tmp_path / "runs", "--out", tmp_path / "report",
                           "--reps", "50")
    assert code == 0 and f"warning: {run_dir / 'run.json'} cannot be read" in err
    assert file_digests(run_dir) == before


def test_run_files_get_the_same_mode(trained_run: Path):
    modes = {p.name: p.stat().st_mode & 0o777 for p in trained_run.iterdir() if p.is_file()}
    assert len(set(modes.values())) == 1, modes
