"""A run's checkpoints: written atomically, and on resume the newest one that loads.

    <run_dir>/checkpoints/step-N/   model.zip (optimizer state inside), vecnormalize.pkl, and
                                    the run's evaluations.npz and curriculum.json at step N
                      latest        names the newest complete one
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl import rundir
from fop_rl.modes import evaluated_weights
from fop_rl.rundir import RunError
from fop_rl.saved import load_stats
from fop_rl.text import first_line


def save_checkpoint(model: PPO, run_dir: Path, keep: int = 2) -> Path:
    """Model (with optimizer state), VecNormalize, evaluations so far and a curriculum's state,
    written atomically.

    Everything goes into a hidden temporary folder that is renamed when complete; only then
    does ``checkpoints/latest`` (itself replaced atomically) name it. A crash at any point
    leaves the previous checkpoint intact and named.
    """
    folder = run_dir / rundir.CHECKPOINTS
    folder.mkdir(exist_ok=True)
    name = f"step-{model.num_timesteps}"
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with evaluated_weights(model):
        model.save(tmp / rundir.MODEL)
    model.get_vec_normalize_env().save(str(tmp / rundir.VECNORM))
    for record in (rundir.EVALUATIONS, rundir.CURRICULUM):
        if (run_dir / record).exists():
            shutil.copy2(run_dir / record, tmp / record)
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    rundir.atomic_write_text(folder / "latest", name + "\n")
    old = sorted((p for p in folder.glob("step-*") if p.is_dir()), key=_step)
    for stale in old[:-keep] if keep else ():
        shutil.rmtree(stale, ignore_errors=True)
    return final


@dataclass
class Checkpoint:
    """A checkpoint, loaded: everything a resumed run continues from."""

    folder: Path
    step: int
    model: PPO  # without an environment: ``model.set_env`` gives it the run's
    stats: VecNormalize  # without its environments: ``stats.set_venv`` gives them
    evaluations: dict[str, np.ndarray] | None  # timesteps, results, ep_lengths up to ``step``
    curriculum: dict[str, Any] | None


def _step(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))


def load_checkpoint(folder: Path, algorithm: type[PPO]) -> Checkpoint:
    """Every file of a checkpoint, loaded; RunError naming the first that does not load."""
    evaluations = folder / rundir.EVALUATIONS
    return Checkpoint(
        folder, _step(folder),
        _read(folder / rundir.MODEL, lambda path: _model(path, algorithm)),
        _read(folder / rundir.VECNORM, load_stats),
        _read(evaluations, _evaluations) if evaluations.exists() else None,
        _read(folder / rundir.CURRICULUM, lambda _: rundir.read_curriculum(folder)))


def _read(path: Path, read: Callable[[Path], Any]) -> Any:
    try:
        return read(path)
    except RunError:
        raise
    except Exception as e:  # a truncated or foreign file raises any of many kinds
        raise RunError(f"{path}: {type(e).__name__}: {first_line(e)}") from None


def _model(path: Path, algorithm: type[PPO]) -> PPO:
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise zipfile.BadZipFile(f"member {damaged} is damaged")
    return algorithm.load(path, device="cpu")


def _evaluations(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in ("timesteps", "results", "ep_lengths")}


def newest_loadable(run_dir: Path, algorithm: type[PPO], set_aside: bool = False
                    ) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint of the run whose files all load (None if it has none), and a line
    for each newer one skipped, saying why; ``set_aside`` (a resume) renames each skipped one
    ``damaged-step-N``. RunError when it has some and none loads."""
    folder = run_dir / rundir.CHECKPOINTS
    found = sorted((p for p in folder.glob("step-*") if p.is_dir()), key=_step, reverse=True)
    skipped, damaged = [], []
    for candidate in found:
        try:
            checkpoint = load_checkpoint(candidate, algorithm)
        except RunError as e:
            skipped.append(f"skipped checkpoint {candidate.name}: {e}")
            damaged.append(candidate)
            continue
        for i, folder in enumerate(damaged if set_aside else ()):
            # out of the rotation, which would keep it and delete an older good one
            folder.rename(folder.with_name(f"damaged-{folder.name}"))
            skipped[i] += f" (kept as {rundir.CHECKPOINTS}/damaged-{folder.name})"
        return checkpoint, skipped
    if found:
        raise RunError(f"{run_dir}: no checkpoint loads ({'; '.join(skipped)}); --force "
                       "starts the run over")
    return None, skipped
