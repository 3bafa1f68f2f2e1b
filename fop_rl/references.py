"""Reference runs: a study's committed per-run records, set beside a user's runs by ``fop-rl
report RUNS_DIR --references NAME``, so that a new optimizer is compared with tuned ones without
re-running them.

A reference set is a folder of ``<env>/<label>/seed-<n>/`` records (config.yaml,
evaluations.npz, final_evaluation.json, run.json; no checkpoints) holding a ``reference.yaml``
that says which study made them and how. The packaged sets are ``fop_rl/reference_runs/<name>/``.
A comparison is refused where the task, the budget or the evaluation differs (the runs would
answer another question); other settings that differ are named in the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fop_rl.rundir import RunError, read_config

PACKAGED = Path(__file__).parent / "reference_runs"
MANIFEST = "reference.yaml"
# what a run must share with the references: the task, the budget, the evaluation
FIXED = ("env", "training.total_timesteps", "training.eval_freq", "training.n_eval_episodes",
         "training.n_eval_envs", "training.final_eval_episodes")
# what the report names where a run differs from the references (the optimizer's own options
# are the point of the comparison)
NOTED = ("ppo", "training.lr_schedule", "training.clip_schedule")


@dataclass(frozen=True)
class References:
    name: str
    folder: Path
    study: str  # where the study that made the records is written down
    command: str  # the command that made them
    baseline: str  # the label the report compares with by default
    config: dict[str, Any]  # a record's config.yaml: every record shares its FIXED keys

    def label(self, label: str) -> str:
        """A reference label as the report shows it, apart from the user's."""
        return f"{self.name}:{label}"


def packaged() -> list[str]:
    """The names of the packaged reference sets."""
    return sorted(p.parent.name for p in PACKAGED.glob(f"*/{MANIFEST}"))


def load(spec: str) -> References:
    """A packaged set by name, or a folder holding a reference.yaml; RunError saying why not."""
    folder = PACKAGED / spec if spec in packaged() else Path(spec)
    try:
        manifest = yaml.safe_load((folder / MANIFEST).read_text())
        study, command = str(manifest["study"]), str(manifest["command"])
        baseline = str(manifest["baseline"])
    except FileNotFoundError:
        raise RunError(f"--references {spec}: neither a packaged set ({', '.join(packaged())}) "
                       f"nor a folder with a {MANIFEST}") from None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise RunError(f"--references {spec}: {folder / MANIFEST} cannot be read "
                       f"(it needs study, command and baseline; {type(e).__name__})") from None
    records = sorted(p.parent for p in folder.glob("*/*/seed-*/config.yaml"))
    if not records:
        raise RunError(f"--references {spec}: {folder} holds no runs yet (the study: {study})")
    configs = [read_config(record) for record in records]
    for record, config in zip(records[1:], configs[1:], strict=True):
        differing = differences(config, configs[0], FIXED)
        if differing:
            raise RunError(f"--references {spec}: {record} differs from {records[0]} in "
                           f"{'; '.join(differing)}")
    return References(folder.name, folder, study, command, baseline, configs[0])


def _value(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _leaves(value: Any, key: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{key}.{k}")
    else:
        yield key, value


def differences(config: dict[str, Any], reference: dict[str, Any], keys: Iterable[str]
                ) -> list[str]:
    """Each setting under ``keys`` where ``config`` differs from ``reference``, as
    ``key: value (references: value)``."""
    found = []
    for key in keys:
        mine, theirs = dict(_leaves(_value(config, key), key)), dict(
            _leaves(_value(reference, key), key))
        found += [f"{k}: {mine.get(k)} (references: {theirs.get(k)})"
                  for k in sorted(mine.keys() | theirs.keys()) if mine.get(k) != theirs.get(k)]
    return found


def check(run_dirs: Iterable[Path], references: References) -> list[str]:
    """RunError if a run's task, budget or evaluation differs from the references'; otherwise
    the other settings where the runs differ, each once."""
    noted: dict[str, None] = {}
    for run_dir in run_dirs:
        config = read_config(run_dir)
        fixed = differences(config, references.config, FIXED)
        if fixed:
            raise RunError(f"{run_dir} cannot be compared with the {references.name} references:"
                           f" {'; '.join(fixed)}")
        noted.update(dict.fromkeys(differences(config, references.config, NOTED)))
    return list(noted)
