"""The run directory: what a training run leaves on disk, and its status file run.json.

    <run_dir>/config.yaml            the fully resolved config: the run can be redone from it
              run.json               status (running|interrupted|complete|failed), progress,
                                     wall time (and evaluation's share), env steps/s,
                                     package versions, the training process (host, boot
                                     id, pid)
              model.zip              the last model (optimizer state inside)
              vecnormalize.pkl       its normalisation statistics
              best_model.zip         the best evaluated model, and best_vecnormalize.pkl
              evaluations.npz        SB3 EvalCallback's record (timesteps, results, ep_lengths)
              final_evaluation.json  the last model's deterministic episodes when the run
                                     completed (training.final_eval_episodes), or `fop-rl
                                     evaluate --save`: returns, mean, std, backend
              monitor/               episode logs (SB3 Monitor: one file per env; envpool:
                                     one VecMonitor file for all)
              progress.csv, tb/      SB3 logger output: CSV and TensorBoard
              checkpoints/step-N/    periodic checkpoints; checkpoints/latest names the newest
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium
import stable_baselines3
import torch
import yaml

import fop_rl
from fop_rl.config import fill_defaults

CONFIG, RUN_JSON = "config.yaml", "run.json"
MODEL, VECNORM = "model.zip", "vecnormalize.pkl"
BEST_MODEL, BEST_VECNORM = "best_model.zip", "best_vecnormalize.pkl"
EVALUATIONS = "evaluations.npz"
FINAL_EVALUATION = "final_evaluation.json"
CHECKPOINTS = "checkpoints"


class RunError(Exception):
    """A run directory that cannot be used as asked, for a reason the user can fix."""


def default_run_dir(env_id: str, optimizer: str, seed: int, root: str | Path = "runs") -> Path:
    return Path(root) / env_id / optimizer / f"seed-{seed}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / RUN_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Update run.json with ``fields`` (other fields kept)."""
    status = read_status(run_dir) or {}
    status.update(fields)
    atomic_write_text(run_dir / RUN_JSON, json.dumps(status, indent=2) + "\n")
    return status


def _boot_id() -> str | None:
    """Linux's id of this boot: it tells apart machines that share a host name (virtual
    machines and containers are often all 'vm' or 'localhost')."""
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return None


def process() -> dict[str, Any]:
    """This process, as run.json records the one that trains the run."""
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": os.getpid()}


def alive_here(record: dict[str, Any]) -> bool | None:
    """Whether the process a record names (``process()``'s fields, in run.json or a tune
    trial's attributes) is alive: None when it ran on another machine, or in another boot of
    this one (or none was recorded), which this one cannot tell."""
    pid, boot_id = record.get("pid"), record.get("boot_id")
    if (pid is None or record.get("host") != socket.gethostname()
            or (boot_id is not None and boot_id != _boot_id())):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but is someone else's
        return True
    return True


def check_not_training(run_dir: Path) -> None:
    """RunError if another live process on this machine is training the run: a second one
    (a resume, --force, a second sweep) would corrupt or delete it."""
    status = read_status(run_dir) or {}
    pid = status.get("pid")
    if status.get("status") == "running" and pid != os.getpid() and alive_here(status):
        raise RunError(f"{run_dir} is being trained by process {pid} on this machine; stop it "
                       "(Ctrl-C or SIGTERM saves a checkpoint) or let it finish")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "torch": torch.__version__,
             "stable_baselines3": stable_baselines3.__version__,
             "gymnasium": gymnasium.__version__, "fop_rl": fop_rl.__version__}
    with contextlib.suppress(PackageNotFoundError):
        found["envpool"] = version("envpool")
    return found


def read_config(run_dir: Path) -> dict[str, Any]:
    config = yaml.safe_load((run_dir / CONFIG).read_text())
    # runs made before these were choices: what they used
    config["env"].setdefault("backend", "gymnasium")
    config["training"].setdefault("n_eval_envs", 1)
    return fill_defaults(config)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS / "latest"
    if not pointer.exists():
        return None
    path = run_dir / CHECKPOINTS / pointer.read_text().strip()
    return path if path.is_dir() else None
