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
              curriculum.json        a curriculum's state: stage, the step each began, stage
                                     evaluations (fop_rl.curriculum)
              monitor/               episode logs (SB3 Monitor: one file per env; envpool:
                                     one VecMonitor file for all)
              progress.csv, tb/      SB3 logger output: CSV and TensorBoard
              checkpoints/step-N/    periodic checkpoints; checkpoints/latest names the newest
              .best/, .evaluations/  where SB3 writes a new best model and the evaluations
                                     before each is renamed into place whole (callbacks.py)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import fop_rl
from fop_rl.config import ConfigError, fill_defaults, plain, resolve_terrain
from fop_rl.optimizers import folder_name
from fop_rl.text import first_line, read_yaml

CONFIG, RUN_JSON = "config.yaml", "run.json"
MODEL, VECNORM = "model.zip", "vecnormalize.pkl"
BEST_MODEL, BEST_VECNORM = "best_model.zip", "best_vecnormalize.pkl"
EVALUATIONS = "evaluations.npz"
FINAL_EVALUATION = "final_evaluation.json"
CURRICULUM = "curriculum.json"
CHECKPOINTS = "checkpoints"


class RunError(Exception):
    """A run directory that cannot be used as asked, for a reason the user can fix."""


def env_folder(config: dict[str, Any]) -> str:
    """The ``<env>`` level of the runs layout ``<env>/<label>/seed-<n>``: the environment id,
    whose namespace slash becomes a dash (one folder level, as ``fop-rl report`` reads it), and
    for the terrain walker its terrain (a preset's name, ``custom-<hash>``, or the curriculum's
    ``curriculum-<hash>``)."""
    env, stages = config["env"], config["training"]["curriculum"]
    name = env["id"].replace("/", "-")
    if env["id"] != fop_rl.TERRAIN_ENV_ID:
        return name
    if stages:
        text = json.dumps(stages.given, sort_keys=True)
        return f"{name}-curriculum-{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return f"{name}-{env['terrain'].name}"


def default_run_dir(env: str, optimizer: str, seed: int, root: str | Path = "runs") -> Path:
    """``<root>/<env>/<optimizer>/seed-<n>``; ``env`` is :func:`env_folder`'s, ``<optimizer>``
    the name's folder (an import path's ``:`` as ``.``)."""
    return Path(root) / env / folder_name(optimizer) / f"seed-{seed}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers see the old or the new file, never half.
    The file gets the mode any other file of the run gets (mkstemp's are private)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write in full; renamed to ``path`` on success,
    removed on failure. For writers that take a file name (SB3's model and statistics saves):
    the temporary name ends as ``path`` does, so that they add no suffix of their own."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """run.json, or None where there is none; RunError naming it where it cannot be read."""
    path = run_dir / RUN_JSON
    try:
        status = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} cannot be read ({first_line(e)}): repair or remove it") from None
    if not isinstance(status, dict):
        raise RunError(f"{path} is not a run's status (a JSON object): repair or remove it")
    return status


def status_text(status: dict[str, Any]) -> str:
    """A run's status for a message; a ``running`` run whose process is gone is ``stopped``."""
    state = status.get("status", "unknown")
    if state == "running" and alive_here(status) is False:
        return f"stopped: its process {status.get('pid')} is gone"
    return state


def write_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Update run.json with ``fields`` (other fields kept)."""
    status = read_status(run_dir) or {}
    status.update(fields)
    atomic_write_text(run_dir / RUN_JSON, json.dumps(status, indent=2) + "\n")
    return status


def restore_status(run_dir: Path, status: dict[str, Any]) -> None:
    """Put back run.json as it was read (``{}``: there was none)."""
    if status:
        atomic_write_text(run_dir / RUN_JSON, json.dumps(status, indent=2) + "\n")
    else:
        (run_dir / RUN_JSON).unlink(missing_ok=True)


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
    import gymnasium
    import stable_baselines3
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__,
             "stable_baselines3": stable_baselines3.__version__,
             "gymnasium": gymnasium.__version__, "fop_rl": fop_rl.__version__}
    with contextlib.suppress(PackageNotFoundError):
        found["envpool"] = version("envpool")
    commit = code_commit()
    if commit:
        found["commit"] = commit
    return found


def code_commit() -> str | None:
    """The git commit of fop_rl's checkout, ``+changes`` when files differ from it; None
    outside a checkout (an installed wheel) or without git."""
    folder = Path(fop_rl.__file__).parent

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *argv], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", "__init__.py")  # this file is the checkout's own
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changed else "")


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.yaml, its terrain resolved as :func:`fop_rl.config.load` resolves
    it; RunError naming it where it cannot be read."""
    path = run_dir / CONFIG
    try:
        config = read_yaml(path.read_text())
        # runs made before these were choices: what they used
        config["env"].setdefault("backend", "gymnasium")
        config["training"].setdefault("n_eval_envs", 1)
        fill_defaults(config)
        if config["env"]["id"] == fop_rl.TERRAIN_ENV_ID:
            resolve_terrain(config, str(path))
        return config
    except ConfigError as e:
        raise RunError(str(e)) from None
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run directory: it has no {CONFIG}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunError(f"{path} cannot be read ({first_line(e)})") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise RunError(f"{path} is not a run's config ({type(e).__name__}: {e})") from None


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(plain(config), sort_keys=False))


def write_curriculum(run_dir: Path, state: dict[str, Any]) -> None:
    """A curriculum's state: curriculum.json whole, and its stage and history in run.json."""
    atomic_write_text(run_dir / CURRICULUM, json.dumps(state, indent=1) + "\n")
    write_status(run_dir, curriculum_stage=state["stage"],
                 curriculum_history=state["history"])


def read_curriculum(folder: Path) -> dict[str, Any] | None:
    """The curriculum state saved in a run directory or a checkpoint, if any."""
    path = folder / CURRICULUM
    return json.loads(path.read_text()) if path.exists() else None


STEP = re.compile(r"step-(\d+)")  # a checkpoint's folder, and its name as a model


def model_name(text: str) -> str:
    """A model of a run by name, checked: best, last or step-N (a checkpoint); ValueError
    otherwise."""
    if text in ("best", "last") or STEP.fullmatch(text):
        return text
    raise ValueError(f"must be best, last or step-N (a checkpoint), got {text!r}")


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS / "latest"
    if not pointer.exists():
        return None
    path = run_dir / CHECKPOINTS / pointer.read_text().strip()
    return path if path.is_dir() else None


def read_evaluations(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, mean return per evaluation) so far; empty while none (or mid-write)."""
    try:
        with np.load(run_dir / EVALUATIONS) as data:
            return data["timesteps"].copy(), data["results"].mean(axis=1)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # mid-write
        return np.zeros(0, dtype=int), np.zeros(0)
