"""Shared helpers: tiny but real training runs, and the CLI run in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fop_rl.cli import main

# Real BipedalWalker PPO, a few thousand steps: small rollouts, short episodes and evaluations;
# SB3's own update, as compiling costs seconds per model (tests/test_compiled.py compiles).
TINY = [
    "env.n_envs=2", "env.max_episode_steps=200", "ppo.n_steps=128", "ppo.batch_size=64",
    "ppo.n_epochs=2", "training.eval_freq=512", "training.n_eval_episodes=2",
    "training.checkpoint_freq=512", "training.final_eval_episodes=2", "ppo.compile=false",
]


@pytest.fixture(scope="session", autouse=True)
def fop_native_step_built() -> None:
    """FOP's C++ step built (about a minute on a fresh machine, then cached on disk) before any
    test waits on a run with a deadline."""
    from fop_rl.optim import native

    native.extension()


def tiny_args(*extra: str) -> list[str]:
    args = []
    for item in TINY:
        args += ["--set", item]
    return [*args, "--no-progress", *extra]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``fop-rl ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_subprocess(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fop_rl.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def processes_of(folder: Path) -> list[int]:
    """Processes whose command line names ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(folder) in cmdline:
                found.append(int(entry.name))
    return found


def kill_runs_of(folder: Path) -> None:
    """The orphaned training processes of a killed tune process (they have their own
    sessions, so they outlive it)."""
    for pid in processes_of(folder):
        os.kill(pid, signal.SIGKILL)


def kill_tune_mid_trial(argv: list[str], folder: Path) -> None:
    """Start ``fop-rl tune`` (``argv``, trials in ``folder``) and SIGKILL it and its runs once
    its first trial trains: no chance to clean up, so the trial stays RUNNING in the study."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_json = folder / "trial-0" / "seed-100" / "run.json"
    deadline = time.monotonic() + 120
    while not run_json.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    kill_runs_of(folder / "trial-0")


@pytest.fixture(autouse=True, scope="session")
def sb3_logs_in_tmp(tmp_path_factory):
    """Models that tests build without fop-rl's logger: SB3 otherwise leaves an empty
    /tmp/SB3-<date> folder per call to learn()."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3-logs")))
        yield


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One complete fop-momentum run on BipedalWalker-v3 (1024 steps), shared read-only."""
    run_dir = tmp_path_factory.mktemp("runs") / "walker"
    assert main(["train", "--timesteps", "1024", "--seed", "3", "--run-dir", str(run_dir),
                 "--set", "optimizers.fop-momentum.hyper_lr=1e-2", *tiny_args()]) == 0
    return run_dir
