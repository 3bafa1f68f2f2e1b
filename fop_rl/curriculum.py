"""A curriculum of walker terrains: stages that end after a number of steps or on a return.

``training.curriculum`` is a list of stages, each a terrain (as ``env.terrain`` takes it) and
the rule that ends it::

    curriculum:
      - {terrain: stumps-low, steps: 200000}   # ends after 200k env steps in the stage
      - {terrain: pits, min_return: 200}       # ends when its evaluation return reaches 200
      - {terrain: stairs, min_return: 150, steps: 500000}  # whichever comes first
      - {terrain: hardcore}                    # the last stage runs to the budget

``min_return`` is POET's minimal criterion: the mean return of the periodic deterministic
evaluation (``training.eval_freq``, ``n_eval_episodes``) on the stage's own terrain. The run's
terrain, on which its regular evaluations are made (so that curves of different runs compare),
is the last stage's; the current stage's terrain is evaluated as well at the same steps when it
differs. A new stage's terrain applies to each training environment from its next episode.

The state (the current stage, the step at which each stage began, the stage evaluations) lives
in ``<run_dir>/curriculum.json``, which every checkpoint copies, so ``--resume`` continues in
the stage the checkpoint was in; run.json records ``curriculum_stage`` and
``curriculum_history``, TensorBoard ``curriculum/stage`` and ``curriculum/stage_eval_return``.
This module reads and checks a curriculum (no training library: the command line checks one
at once); the callback that runs it in training is :class:`fop_rl.callbacks.Curriculum`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fop_rl.terrain import Terrain, TerrainError, resolve

RULES = ("steps", "min_return")


class CurriculumError(ValueError):
    """A curriculum that cannot run: the message names the stage and the reason."""


@dataclass(frozen=True)
class Stage:
    terrain: Terrain
    steps: int | None = None
    min_return: float | None = None


@dataclass(frozen=True)
class Curriculum:
    """The stages of a curriculum, resolved, and the list they were parsed from (``given``:
    what a config file holds)."""

    stages: tuple[Stage, ...]
    given: list[dict[str, Any]]

    @property
    def final(self) -> Terrain:
        """The last stage's terrain: the run's own, on which its evaluations are made."""
        return self.stages[-1].terrain


def parse(stages: Any) -> Curriculum:
    """A ``training.curriculum`` value resolved; CurriculumError on the first problem."""
    if isinstance(stages, Curriculum):
        return stages
    if not isinstance(stages, list) or not stages:
        raise CurriculumError("training.curriculum must be a list of one or more stages")
    parsed = []
    for i, stage in enumerate(stages):
        where = f"training.curriculum[{i}]"
        if not isinstance(stage, dict) or "terrain" not in stage:
            raise CurriculumError(f"{where} must be a mapping with a terrain, got {stage!r}")
        unknown = set(stage) - {"terrain", *RULES}
        if unknown:
            raise CurriculumError(f"{where} has unknown keys {', '.join(sorted(unknown))} "
                                  f"(known: terrain, {', '.join(RULES)})")
        try:
            terrain = resolve(stage["terrain"])
        except TerrainError as e:
            raise CurriculumError(f"{where}: {e}") from None
        rules = [r for r in RULES if r in stage]
        last = i == len(stages) - 1
        if last and rules:
            raise CurriculumError(f"{where} is the last stage, which runs to the budget: leave "
                                  f"out {rules[0]}")
        if not last and not rules:
            raise CurriculumError(f"{where} needs a rule that ends it: steps: N (env steps "
                                  "in the stage), min_return: R (evaluation return), or both "
                                  "(whichever comes first)")
        steps, min_return = stage.get("steps"), stage.get("min_return")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or steps < 1):
            raise CurriculumError(f"{where}.steps must be a whole number >= 1, got {steps!r}")
        if min_return is not None and (isinstance(min_return, bool)
                                       or not isinstance(min_return, (int, float))):
            raise CurriculumError(f"{where}.min_return must be a number, got {min_return!r}")
        parsed.append(Stage(terrain, steps, None if min_return is None else float(min_return)))
    return Curriculum(tuple(parsed), stages)


@dataclass
class State:
    """Where a run is in its curriculum: ``history[i]`` is the step at which stage i began."""

    stage: int = 0
    history: list[int] = field(default_factory=lambda: [0])
    evaluations: list[dict[str, float]] = field(default_factory=list)
