"""Run configuration: one YAML per environment (rl-baselines3-zoo style), validated up front.

A config has four sections: ``env`` (environment and normalisation), ``training`` (budget,
seed, optimizer name, evaluation and checkpoint cadence, the run to start from), ``ppo`` (SB3
PPO hyperparameters) and ``optimizers`` (one entry per optimizer name: its learning rate and
options). Every key is checked against :data:`SCHEMA` before anything starts: a misspelt key, a
wrong type or an out-of-range value is a :class:`ConfigError` naming the file, the key and the
reason. Keys in :data:`OPTIONAL` may be left out and take their default.

``env.id`` is any registered gymnasium environment with a continuous (Box) action space; the two
walkers and the terrain walker (``fop_rl/BipedalWalkerTerrain-v0``, whose ``env.terrain`` is a
preset name or parameters: :mod:`fop_rl.terrain`) have packaged configs, any other needs a
config file of its own. ``training.curriculum`` takes the terrain walker through a list of
terrains (:mod:`fop_rl.curriculum`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fop_rl import TERRAIN_ENV_ID
from fop_rl import optimizers as optimizer_names
from fop_rl.optimizers import OPTIMIZER_KEYS
from fop_rl.text import first_line, read_yaml  # noqa: F401 (public here too)

BACKENDS = ("gymnasium", "envpool")
DEFAULT_ENV = "BipedalWalker-v3"


class ConfigError(ValueError):
    """A config that cannot run: the message names the source, the key and the reason."""


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _at_least_one(v: Any) -> str | None:
    return None if v >= 1 else "must be >= 1"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _unit(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _layer_sizes(value: list) -> str | None:
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        return None
    return "must be a list of layer sizes, whole numbers >= 1"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def continuous_control(env_id: str) -> str | None:
    """None for a registered gymnasium environment with a Box action space, else why not."""
    import gymnasium

    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error:
        return "is not a registered gymnasium environment"
    try:
        env = gymnasium.make(env_id)
    except Exception as e:  # a missing simulator (MuJoCo, Box2D) or a broken registration
        return f"cannot be made ({type(e).__name__}: {e})"
    space = env.action_space
    env.close()
    if not isinstance(space, gymnasium.spaces.Box):
        return (f"has a {type(space).__name__} action space: fop-rl trains PPO on continuous "
                "(Box) actions only")
    return None


def whole_number(value: Any) -> int | None:
    """A whole number however it is spelt (7, "7", 1e5, "1e5", 100000.0), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    return value if isinstance(value, int) else None


_NUMBER = (int, float)
# section -> key -> (accepted types, check or None)
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Callable[[Any], str | None] | None]]] = {
    "env": {
        "id": ((str,), None),  # checked last by validate: it makes an environment
        "n_envs": ((int,), _at_least_one),
        "max_episode_steps": ((int,), _at_least_one),
        "backend": ((str,), _one_of(*BACKENDS)),
        "vec_env": ((str,), _one_of("dummy", "subproc")),
        "norm_obs": ((bool,), None),
        "norm_reward": ((bool,), None),
        "clip_obs": (_NUMBER, _positive),
        "terrain": ((str, dict, type(None)), None),  # resolved by resolve_terrain
        "fall_penalty": (_NUMBER, None),
        "reward_scale": (_NUMBER, _positive),
        "action_repeat": ((int,), _at_least_one),
    },
    "training": {
        "total_timesteps": ((int,), _at_least_one),
        "seed": ((int,), _non_negative),
        "optimizer": ((str,), optimizer_names.name_problem),
        "eval_freq": ((int,), _at_least_one),
        "n_eval_episodes": ((int,), _at_least_one),
        "n_eval_envs": ((int,), _at_least_one),
        "checkpoint_freq": ((int,), _at_least_one),
        "keep_checkpoints": ((int,), _non_negative),
        "diagnostics_image_every": ((int,), _at_least_one),
        "final_eval_episodes": ((int,), _non_negative),
        "lr_schedule": ((str,), _one_of("constant", "linear")),
        "clip_schedule": ((str,), _one_of("constant", "linear")),
        "init_from": ((str, type(None)), None),
        "init_model": ((str, type(None)), lambda v: None if v in (None, "best", "last")
                       else "must be best, last or null"),
        "curriculum": ((list, type(None)), None),  # resolved by resolve_terrain
    },
    "ppo": {
        "n_steps": ((int,), _at_least_one),
        "batch_size": ((int,), _at_least_one),
        "n_epochs": ((int,), _at_least_one),
        "gamma": (_NUMBER, _unit),
        "gae_lambda": (_NUMBER, _unit),
        "clip_range": (_NUMBER, _positive),
        "ent_coef": (_NUMBER, _non_negative),
        "vf_coef": (_NUMBER, _non_negative),
        "max_grad_norm": (_NUMBER, _positive),
        "net_arch": ((list,), _layer_sizes),
        # the minibatch gradient and rollout forward compiled (fop_rl.compiled)
        "compile": ((bool,), None),
    },
}
# keys a config may leave out, with their defaults: section -> key -> default
OPTIONAL: dict[str, dict[str, Any]] = {
    # a run directory whose policy, value network and normalisation a new run starts from;
    # its best model (null: best, or last in a run not evaluated yet) or its last one
    # deterministic episodes of the last model when a run completes (0: none)
    # a list of terrain stages (fop_rl.curriculum), or none
    # PPO's clip range constant, or decaying linearly to 0 as the learning rate can
    # the newest checkpoints kept (0: every one, for choosing a model among them afterwards)
    "training": {"init_from": None, "init_model": None, "final_eval_episodes": 0,
                 "curriculum": None, "clip_schedule": "constant", "keep_checkpoints": 2},
    # the terrain walker's terrain (null: plain ground); other environments have none.
    # What the agent trains on (fop_rl.wrappers): the reward of the walker's fall (the task's
    # -100), a scale of every reward, and each action held for k simulator steps
    "env": {"terrain": None, "fall_penalty": -100.0, "reward_scale": 1.0, "action_repeat": 1},
    # PPO with its minibatch gradient and rollout forward compiled (false: SB3's own PPO), for
    # every optimizer: FOP's compiled runs learn as SB3's (docs/results/speed/gradient-learning)
    "ppo": {"compile": True},
}
# every packaged optimizer's option, with its type and check; each name accepts the keys in
# OPTIMIZER_KEYS (an import path's keys are its class's, checked by the class itself)
OPTIMIZER_OPTIONS: dict[str, tuple[tuple[type, ...], Callable[[Any], str | None] | None]] = {
    "lr": (_NUMBER, _positive),
    "momentum": (_NUMBER, lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
    "eps": (_NUMBER, _positive),
    "hyper_lr": (_NUMBER, _non_negative),
    "hyper_optimizer": ((str,), _one_of("adam", "sgd")),
    "side": ((str,), _one_of("input", "output", "flat", "both")),
    "rank": ((int,), _at_least_one),
    "max_full_dim": ((int,), _at_least_one),
    "max_eigenvalue": (_NUMBER, lambda v: None if v >= 1 else "must be >= 1"),
    "target_norm": (_NUMBER, _positive),
    "norm_delay": (_NUMBER, _positive),
    "weight_decay": (_NUMBER, _non_negative),
    "warmup_steps": ((int,), _non_negative),
    "d_coef": (_NUMBER, _positive),
    "precondition_frequency": ((int,), _at_least_one),
}


def config_files() -> dict[str, Path]:
    """The packaged configs, by environment id (a ``*_recipe.yaml`` is a recipe for its
    environment, taken by ``--config`` only)."""
    folder = resources.files("fop_rl") / "configs"
    found = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml") and not entry.name.endswith("_recipe.yaml"):
            path = Path(str(entry))
            data = read_yaml(path.read_text())
            if "env" in data:  # not the terrain presets
                found[data["env"]["id"]] = path
    return found


def load(path: str | Path | None = None, env_id: str | None = None,
         overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a config (the packaged one for ``env_id`` when no path), apply KEY=VALUE overrides
    (dotted keys, YAML values) and validate it."""
    if path is None:
        env_id = env_id or DEFAULT_ENV
        files = config_files()
        if env_id not in files:
            raise ConfigError(f"no packaged config for {env_id!r} (packaged: "
                              f"{', '.join(files)}): write one and pass --config FILE "
                              "(README: Any environment)")
        path = files[env_id]
    source = str(path)
    try:
        config = read_yaml(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {source}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(config).__name__}")
    if env_id is not None:
        config.setdefault("env", {})["id"] = env_id
    typed = {}  # a key given with --set: its errors name the --set, not the file
    for item in overrides:
        set_key(config, item, source="--set")
        typed[item.partition("=")[0]] = f"--set {item}"
    fill_defaults(config)
    validate(config, source, typed)
    return config


def plain(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config as YAML and JSON data: its resolved terrain and curriculum as they
    were given (what config.yaml holds)."""
    def given(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: given(v) for k, v in value.items()}
        # a resolved setting (fop_rl.terrain.Terrain, fop_rl.curriculum.Curriculum) keeps
        # what it was resolved from
        return getattr(value, "given", value)

    return given(config)


def fill_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Add the :data:`OPTIONAL` keys a config leaves out, in place."""
    for section, defaults in OPTIONAL.items():
        values = config.get(section)
        if isinstance(values, dict):
            for key, value in defaults.items():
                values.setdefault(key, value)
    return config


def set_key(config: dict[str, Any], item: str, source: str) -> None:
    """Apply one ``section.key=value`` override in place."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"{source} {item!r}: expected KEY=VALUE, for example ppo.n_steps=256")
    parts = key.split(".")
    # an optimizer's import path is one key: optimizers.torch.optim:AdamW.lr
    colon = next((i for i, part in enumerate(parts) if ":" in part), None)
    if colon is not None and colon > 1:
        parts = [parts[0], ".".join(parts[1:colon + 1]), *parts[colon + 1:]]
    node = config
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        elif part == "terrain" and isinstance(node[part], str):  # a preset, then overrides
            node[part] = {"preset": node[part]}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{source} {item!r}: {part} is not a section")
    try:
        value = read_yaml(raw)
    except yaml.YAMLError:
        raise ConfigError(f"{source} {item!r}: value is not valid YAML") from None
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string: a number is meant
        with contextlib.suppress(ValueError):
            value = float(value)
    node[parts[-1]] = value


def validate(config: dict[str, Any], source: str, typed: dict[str, str] | None = None) -> None:
    """Raise ConfigError on the first unknown key, wrong type or out-of-range value (naming
    ``typed[key]``, the override that set it, else ``source``); resolve the terrain walker's
    settings in place (:func:`resolve_terrain`)."""
    typed = typed or {}
    sections = (*SCHEMA, "optimizers", "search")
    for section in config:
        if section not in sections:
            raise ConfigError(f"{source}: unknown section {section!r} "
                              f"(known: {', '.join(sections)})")
    for section, keys in SCHEMA.items():
        values = config.get(section)
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} is missing or not a mapping")
        for key in keys:
            if key not in values:
                raise ConfigError(f"{source}: {section}.{key} is missing")
        for key, value in values.items():
            if key not in keys:
                raise ConfigError(f"{source}: unknown key {section}.{key} "
                                  f"(known: {', '.join(keys)})")
            if keys[key][0] == (int,) and isinstance(value, float | str):
                # 1e5 or 100000.0: YAML's float of a whole number is that number
                value = values[key] = whole_number(value) if whole_number(value) is not None \
                    else value
            _check(typed.get(f"{section}.{key}", source), f"{section}.{key}", value, *keys[key])
    optimizers = config.get("optimizers")
    if not isinstance(optimizers, dict):
        raise ConfigError(f"{source}: section 'optimizers' is missing or not a mapping")
    chosen = config["training"]["optimizer"]
    if optimizer_names.is_import_path(chosen):
        optimizers.setdefault(chosen, {})
    for name, options in optimizers.items():
        problem = optimizer_names.name_problem(name)
        if problem:
            raise ConfigError(f"{source}: optimizers.{name}: the name {problem}")
        imported = optimizer_names.is_import_path(name)
        if imported and isinstance(options, dict):
            options.setdefault("lr", _default_lr(source, name))
        if not isinstance(options, dict) or "lr" not in options:
            raise ConfigError(f"{source}: optimizers.{name} must be a mapping with an lr")
        if imported:
            _check_imported(name, options, source, typed)
            continue
        for key, value in options.items():
            if key not in OPTIMIZER_KEYS[name]:
                raise ConfigError(f"{source}: unknown key optimizers.{name}.{key} "
                                  f"(known: {', '.join(OPTIMIZER_KEYS[name])})")
            where = f"optimizers.{name}.{key}"
            _check(typed.get(where, source), where, value, *OPTIMIZER_OPTIONS[key])
    _validate_search(config.get("search", {}), source)
    if chosen not in optimizers:
        raise ConfigError(f"{source}: training.optimizer is {chosen!r}, which has no entry "
                          "under optimizers")
    missing = optimizer_names.missing_package(chosen)
    if missing:
        raise ConfigError(f"{source}: training.optimizer: {missing}")
    ppo, n_envs = config["ppo"], config["env"]["n_envs"]
    if ppo["batch_size"] > ppo["n_steps"] * n_envs:
        raise ConfigError(f"{source}: ppo.batch_size ({ppo['batch_size']}) must be at most "
                          f"ppo.n_steps * env.n_envs ({ppo['n_steps'] * n_envs})")
    # last, what makes an environment or imports a simulator: a usage error stays quick
    env_id = config["env"]["id"]
    reason = continuous_control(env_id)
    if reason:
        raise ConfigError(f"{source}: env.id {reason}, got {env_id!r}")
    if (env_id == TERRAIN_ENV_ID or config["env"]["terrain"] is not None
            or config["training"]["curriculum"] is not None):
        resolve_terrain(config, source)
    elif config["env"]["backend"] == "envpool":
        from fop_rl import envpool_env

        if not envpool_env.installed():
            raise ConfigError(f"{source}: env.backend is envpool, but envpool is not installed "
                              "(pip install envpool)")
        import envpool

        if env_id not in envpool.list_all_envs():
            raise ConfigError(f"{source}: env.backend is envpool, which has no {env_id}: use "
                              "env.backend=gymnasium")


def _check_imported(name: str, options: dict[str, Any], source: str,
                    typed: dict[str, str]) -> None:
    """An import path's config entry: lr > 0, its keys the class's, its values accepted by the
    class (errors name the --set that gave a key, else ``source``)."""
    def where(key: str) -> str:
        return typed.get(f"optimizers.{name}.{key}", source)

    _check(where("lr"), f"optimizers.{name}.lr", options["lr"], *OPTIMIZER_OPTIONS["lr"])
    try:
        key = optimizer_names.unknown_key(name, options)
        if key is not None:
            raise ConfigError(f"{where(key)}: unknown key optimizers.{name}.{key} (known: "
                              f"{', '.join(optimizer_names.accepted_options(name) or ())})")
        optimizer_names.check_values(name, options)
    except optimizer_names.OptimizerError as e:
        given = [typed[f"optimizers.{name}.{k}"] for k in options
                 if f"optimizers.{name}.{k}" in typed]
        raise ConfigError(f"{', '.join(given) or source}: {e}") from None


def _default_lr(source: str, name: str) -> float:
    """The learning rate of an import path whose entry has none: its class's default."""
    try:
        lr = optimizer_names.default_lr(name)
    except optimizer_names.OptimizerError as e:
        raise ConfigError(f"{source}: training.optimizer: {e}") from None
    if lr is None:
        raise ConfigError(f"{source}: {name} has no default lr: give one, e.g. --set "
                          f"optimizers.{name}.lr=3e-4")
    return lr


def resolve_terrain(config: dict[str, Any], source: str) -> None:
    """``env.terrain`` and ``training.curriculum`` resolved in place, once, where a config
    enters: a :class:`~fop_rl.terrain.Terrain` (a curriculum's last stage's: the run's own,
    on which it is evaluated) and a :class:`~fop_rl.curriculum.Curriculum` or None; their
    parameters checked, and whether the configured backend simulates them."""
    from fop_rl import curriculum
    from fop_rl import terrain as terrains

    env, stages = config["env"], config["training"]["curriculum"]
    if env["id"] != TERRAIN_ENV_ID:
        what = "env.terrain" if stages is None else "training.curriculum"
        raise ConfigError(f"{source}: {what} needs env.id {TERRAIN_ENV_ID}, not {env['id']}")
    try:
        terrain = terrains.resolve(env["terrain"])
    except terrains.TerrainError as e:
        raise ConfigError(f"{source}: env.terrain: {e}") from None
    if stages is not None:
        try:
            stages = curriculum.parse(stages)
        except curriculum.CurriculumError as e:
            raise ConfigError(f"{source}: {e}") from None
        if env["terrain"] is not None and terrain != stages.final:
            raise ConfigError(f"{source}: env.terrain differs from the curriculum's last "
                              "stage, which is the run's terrain: leave env.terrain out")
        terrain = stages.final
    env["terrain"], config["training"]["curriculum"] = terrain, stages
    refusal = envpool_refusal(config)
    if env["backend"] == "envpool" and refusal:
        raise ConfigError(f"{source}: env.backend is envpool, which {refusal}: use "
                          "env.backend=gymnasium")


def envpool_refusal(config: dict[str, Any]) -> str | None:
    """Why EnvPool cannot run a resolved config's terrain walker, or None: it simulates only
    the flat and hardcore terrains, one for a whole run."""
    from fop_rl import terrain as terrains

    if config["training"]["curriculum"] is not None:
        return "cannot change terrains (training.curriculum)"
    if config["env"]["terrain"].envpool_id is None:
        return terrains.ENVPOOL_ONLY
    return None


def _validate_search(search: Any, source: str) -> None:
    """``search``: optimizer name -> option -> {low, high[, log]} or {choices: [...]}."""
    if not isinstance(search, dict):
        raise ConfigError(f"{source}: section 'search' must be a mapping of optimizer names")
    for name, space in search.items():
        where = f"search.{name}"
        problem = optimizer_names.name_problem(name)
        if problem:
            raise ConfigError(f"{source}: {where}: the name {problem}")
        if not isinstance(space, dict) or not space:
            raise ConfigError(f"{source}: {where} must map options to ranges")
        try:
            known = optimizer_names.accepted_options(name)
        except optimizer_names.OptimizerError as e:
            raise ConfigError(f"{source}: {where}: {e}") from None
        for key, spec in space.items():
            _check_range(source, f"{where}.{key}", key, known, spec)


def _check_range(source: str, where: str, key: str, known: tuple[str, ...] | None,
                 spec: Any) -> None:
    """``known``: the optimizer's keys (None: any key)."""
    def fail(reason: str) -> ConfigError:
        return ConfigError(f"{source}: {where} {reason}")

    if known is not None and key not in known:
        raise fail(f"is not an option of this optimizer (known: {', '.join(known)})")
    # an import path's own options: numbers in a range, any values as choices
    checks = OPTIMIZER_OPTIONS.get(key, (_NUMBER, None))
    if not isinstance(spec, dict):
        raise fail("must be {low: L, high: H[, log: true]} or {choices: [...]}")
    if "choices" in spec:
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise fail("must be {choices: [one or more values]}")
        if key in OPTIMIZER_OPTIONS:
            for value in spec["choices"]:
                _check(source, where, value, *OPTIMIZER_OPTIONS[key])
        return
    unknown = set(spec) - {"low", "high", "log"}
    if unknown:
        raise fail(f"has unknown keys {', '.join(sorted(unknown))} (known: low, high, log, "
                   "choices)")
    if "low" not in spec or "high" not in spec:
        raise fail("must have low and high")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    for bound, value in (("low", low), ("high", high)):
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            raise fail(f"{bound} must be a number, got {value!r} (YAML reads 1e-4 as text: "
                       "write 1.0e-4)")
        _check(source, where, value, *checks)
    if not isinstance(log, bool):
        raise fail(f"log must be true or false, got {log!r}")
    if low >= high:
        raise fail(f"low ({low}) must be < high ({high})")
    if log and low <= 0:
        raise fail(f"a log scale needs low > 0, got {low}")


def _check(source: str, key: str, value: Any, types: tuple[type, ...],
           check: Callable[[Any], str | None] | None) -> None:
    # bool is an int in Python: accept it only where a bool is asked for
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"{source}: {key} must be {wanted}, got {value!r}")
    reason = check(value) if check else None
    if reason:
        raise ConfigError(f"{source}: {key} {reason}, got {value!r}")

