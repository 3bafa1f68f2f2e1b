"""Command-line flags turned into config overrides, once for train, sweep and tune: a terrain
or curriculum (checked at once, without torch), --set, a source to fine-tune from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fop_rl.cli.parser import UsageError


def checked_terrain(flag: str, spec):
    """A terrain given on the command line, checked at once (no training library needed)."""
    from fop_rl import terrain as terrains

    try:
        terrains.resolve(spec)
    except terrains.TerrainError as e:
        raise UsageError(f"{flag}: {e}") from None
    return spec


def terrain_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """--terrain or --curriculum as the terrain walker's env id (unless --config names one)
    and an override that comes before --set's, so that ``--set env.terrain.<param>=...``
    refines the preset."""
    curriculum_file = getattr(args, "curriculum", None)
    if args.terrain is None and curriculum_file is None:
        return args.env_id, []
    from fop_rl.terrain import ENV_ID

    flag = "--terrain" if curriculum_file is None else "--curriculum"
    if args.terrain is not None and curriculum_file is not None:
        raise UsageError("--curriculum: its last stage is the run's terrain: leave out "
                         "--terrain")
    if args.env_id not in (None, ENV_ID):
        raise UsageError(f"{flag} runs {ENV_ID}: leave out --env {args.env_id}")
    env_id = args.env_id or (None if args.config else ENV_ID)
    if curriculum_file is None:
        checked_terrain("--terrain", args.terrain)
        return env_id, [f"env.terrain={json.dumps(args.terrain)}"]
    return env_id, [f"training.curriculum={json.dumps(read_curriculum(curriculum_file))}"]


def read_curriculum(path: Path) -> list:
    """A --curriculum file's stages, checked."""
    from fop_rl import curriculum
    from fop_rl.text import first_line, read_yaml

    try:
        stages = read_yaml(path.read_text())
    except OSError as e:
        raise UsageError(f"--curriculum {path}: cannot read it ({first_line(e)})") from None
    except ValueError as e:  # YAMLError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"--curriculum {path}: not valid YAML ({first_line(e)})") from None
    try:
        curriculum.parse(stages)
    except curriculum.CurriculumError as e:
        raise UsageError(f"--curriculum {path}: {e}") from None
    return stages


def init_overrides(args: argparse.Namespace) -> list[str]:
    """--init-from and --init-model as config overrides (JSON strings are YAML scalars), for
    the commands that take them."""
    source, model = getattr(args, "init_from", None), getattr(args, "init_model", None)
    if model and not source:
        raise UsageError("--init-model needs --init-from")
    if not source:
        return []
    items = [f"training.init_from={json.dumps(str(source))}"]
    if model:
        items.append(f"training.init_model={model}")
    return items


def terrain_to_run_on(args: argparse.Namespace):
    """evaluate's and render's terrain: --terrain (else the run's own), refined by --set
    env.terrain.<parameter>=VALUE; None: the run's own environment."""
    if not args.overrides:
        return None if args.terrain is None else checked_terrain("--terrain", args.terrain)
    from fop_rl import rundir
    from fop_rl.config import set_key
    from fop_rl.terrain import ENV_ID

    wrong = [item for item in args.overrides if not item.startswith("env.terrain.")]
    if wrong:
        raise UsageError(f"--set {wrong[0]!r}: {args.command} takes env.terrain.<parameter>="
                         "VALUE only (the run's other settings are its own)")
    base = args.terrain
    if base is None:
        env = rundir.read_config(args.run_dir)["env"] if args.run_dir.is_dir() else {}
        base = env["terrain"].given if env.get("id") == ENV_ID else None
    holder = {"env": {"terrain": base}}
    for item in args.overrides:
        set_key(holder, item, source="--set")
    return checked_terrain("--set", holder["env"]["terrain"])


def config_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The environment id and the config overrides that a train, sweep or tune command line
    gives, in the order they apply: terrain or curriculum, --set, the source to fine-tune from,
    then the one run's optimizer, seed and budget where the command takes them (a sweep gives
    each run its own)."""
    env_id, overrides = terrain_overrides(args)
    overrides += [*args.overrides, *init_overrides(args)]
    for flag, key in (("optimizer", "training.optimizer"), ("seed", "training.seed"),
                      ("timesteps", "training.total_timesteps")):
        value = getattr(args, flag, None) if args.command != "sweep" else None
        if value is not None:
            overrides.append(f"{key}={value}")
    return env_id, overrides
