"""Saved models and normalisation statistics, loaded with one-line errors: SB3's model zips and
VecNormalize pickles, stable-baselines3 1.x files that name the old ``gym`` package included.

rl-baselines3-zoo's released agents were saved by SB3 1.x under gym: their pickles hold
``gym.spaces.Box`` (and NumPy 1's ``numpy.core``). A model zip loads with SB3's
``custom_objects`` in place of what it cannot unpickle (the spaces, taken from the environment,
and the schedules, which evaluation does not use); a statistics pickle loads with ``gym.*`` read
as ``gymnasium.*`` and ``numpy.core`` as ``numpy._core``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl.rundir import RunError
from fop_rl.text import first_line

OLD_GYM_NOTE = ("saved by stable-baselines3 1.x under the old gym package: loaded with "
                "gymnasium's spaces and classes in its place")


def load_model(path: Path, env_id: str | None = None) -> PPO:
    """PPO.load, with a one-line error for a file that is not a model or does not load.
    ``env_id``: the environment whose spaces stand in for a model's that do not unpickle (an
    SB3 1.x model of the old gym package)."""
    try:
        with zipfile.ZipFile(path) as z:
            if "data" not in z.namelist():
                raise RunError(f"{path} is not a stable-baselines3 model (no 'data' entry)")
        custom = None if env_id is None else _stand_ins(env_id)
        return PPO.load(path, device="cpu", custom_objects=custom)
    except RunError:
        raise
    except zipfile.BadZipFile:
        raise RunError(f"{path} is not a valid model file (not a zip archive)") from None
    except Exception as e:  # SB3 raises many kinds for truncated or foreign archives
        raise RunError(f"cannot load {path}: {type(e).__name__}: {first_line(e)}") from None


def _stand_ins(env_id: str) -> dict[str, Any]:
    env = gymnasium.make(env_id)
    try:
        return {"observation_space": env.observation_space, "action_space": env.action_space,
                "learning_rate": 0.0, "lr_schedule": _zero, "clip_range": _zero}
    finally:
        env.close()


def _zero(_: float) -> float:
    return 0.0


class _OldGymUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "gym" or module.startswith("gym."):
            module = "gymnasium" + module.removeprefix("gym")
        elif module.startswith("numpy.core") and not hasattr(np, "core"):
            module = "numpy._core" + module.removeprefix("numpy.core")
        return super().find_class(module, name)


def load_stats(path: Path) -> VecNormalize:
    """The normalisation statistics saved beside a model, not yet wrapping environments
    (VecNormalize.load without its ``set_venv``), with a one-line error where they do not
    load; the old gym package's read as gymnasium's."""
    try:
        with open(path, "rb") as f:
            stats = _OldGymUnpickler(f).load()
    except Exception as e:  # a truncated or foreign pickle raises any of many kinds
        raise RunError(f"cannot load {path}: {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(stats, VecNormalize):
        raise RunError(f"{path} holds a {type(stats).__name__}, not VecNormalize statistics")
    return stats


def check_spaces(model: PPO, env_id: str, what: str) -> None:
    """RunError (starting with ``what``) unless ``model`` acts in ``env_id``'s spaces."""
    reference = gymnasium.make(env_id)
    try:
        for name in ("observation_space", "action_space"):
            mine, theirs = getattr(reference, name), getattr(model, name)
            if mine != theirs:
                theirs_text, mine_text = _space(theirs), _space(mine)
                if theirs_text == mine_text:
                    theirs_text += " (other bounds)"
                raise RunError(f"{what}: its {name.replace('_', ' ')}, {theirs_text}, differs "
                               f"from {env_id}'s, {mine_text}")
    finally:
        reference.close()


def _space(space: gymnasium.Space) -> str:
    return f"{type(space).__name__} of shape {space.shape}"
