"""BipedalWalker on terrains of any difficulty: POET's parametric obstacles on gymnasium's walker.

``gym.make("fop_rl/BipedalWalkerTerrain-v0", terrain=...)`` (registered by ``import fop_rl``)
is gymnasium's BipedalWalker whose course is generated from a :class:`Terrain`: the ground's
roughness and, each absent unless given, pits, stumps and stairs whose sizes are drawn anew for
every obstacle from the environment's seeded generator. Spaces, rewards, the fall penalty and
the physics are gymnasium's; the time limit is the packaged configs' 2,000 steps.

Both packaged tasks are points on this dial, exactly: with no parameters (the preset ``flat``)
the environment is BipedalWalker-v3 step for step, and the preset ``hardcore`` is
BipedalWalkerHardcore-v3 step for step (same seed and actions, the same observations, rewards
and terminations), because the generator makes the same draws from ``np_random`` in the same
order as gymnasium's and builds the same bodies in the same order.

Units: every size is in terrain steps (``TERRAIN_STEP`` = 14/30 m, about the walker's hull
length / 2.6; the course is 200 steps long and the lidar sees about 11 steps ahead). A size is
a number (fixed: nothing is drawn) or a ``[low, high]`` range drawn for each obstacle:
uniformly when either bound is a float, as a whole number from low to high inclusive when both
are integers (as gymnasium draws, which the exact ``hardcore`` preset needs).

Parameters (POET's kinds, Wang et al. 2019):

============== ======================================================== ==================
parameter      meaning                                                  gymnasium hardcore
============== ======================================================== ==================
roughness      multiplier of the ground's random slope changes (>= 0;   1 (as plain)
               0 is smooth, POET's "challenging" starts at 4.5)
pit_gap        opening of a pit, steps (> 0); pits are 4 steps deep     [2, 3]
stump_height   height of a stump, steps (> 0)                           [1, 2]
stump_width    width of a stump, steps (> 0); absent: square stumps,   (square)
               the width drawn once with the height, as gymnasium's
stair_height   rise of each stair step, steps (> 0); up or down at     1
               random; default 1
stair_width    length of each stair step, whole steps (>= 1); default  [4, 4]
               [4, 4]
stair_steps    number of stair steps, whole (>= 1); default [3, 4]      [3, 4]
============== ======================================================== ==================

A stair parameter given enables stairs (the others take gymnasium's values); ``stump_height``
enables stumps, ``pit_gap`` pits. Between obstacles lie 5 to 9 steps of grass, and the kind of
each obstacle is drawn uniformly from the kinds enabled, as in gymnasium. Presets by name are
in ``configs/terrains.yaml``; a terrain is given as a preset name, a mapping of parameters, or
a mapping with ``preset`` and overrides.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.envs.box2d.bipedal_walker import (
    SCALE,
    TERRAIN_GRASS,
    TERRAIN_HEIGHT,
    TERRAIN_LENGTH,
    TERRAIN_STARTPAD,
    TERRAIN_STEP,
    BipedalWalker,
)
from gymnasium.utils import EzPickle

from fop_rl import TERRAIN_ENV_ID
from fop_rl.text import read_yaml

ENV_ID = TERRAIN_ENV_ID  # registered by `import fop_rl`
MAX_EPISODE_STEPS = 2000  # the packaged configs' (and the paper's) time limit
PIT_DEPTH = 4  # steps
GROUND = ("rough", "flat")  # the kinds of ground_at that are not obstacles
STAIR_DEFAULTS = {"stair_height": 1, "stair_width": [4, 4], "stair_steps": [3, 4]}
# BipedalWalker-v3 and BipedalWalkerHardcore-v3, the two tasks EnvPool simulates as well
ENVPOOL_IDS = {"flat": "BipedalWalker-v3", "hardcore": "BipedalWalkerHardcore-v3"}
_OBSTACLE_COLORS = ((255, 255, 255), (153, 153, 153))  # gymnasium's

Size = int | float | list  # a number or [low, high]


class TerrainError(ValueError):
    """A terrain that cannot be built: the message names the parameter and the reason."""


@dataclass(frozen=True)
class Terrain:
    """A walker terrain's parameters (see the module's docstring for units and meaning), and
    the spec it was resolved from (``given``: what a config file holds; not compared)."""

    roughness: float = 1.0
    pit_gap: Size | None = None
    stump_height: Size | None = None
    stump_width: Size | None = None
    stair_height: Size | None = None
    stair_width: Size | None = None
    stair_steps: Size | None = None
    given: str | dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """A short name: the preset's, ``flat`` for plain ground, else ``custom-<hash>``."""
        if self.given is None or isinstance(self.given, str):
            return self.given or "flat"
        text = json.dumps(self.parameters(), sort_keys=True)
        return "custom-" + hashlib.sha1(text.encode()).hexdigest()[:6]

    @property
    def envpool_id(self) -> str | None:
        """The EnvPool task this terrain is exactly (plain or hardcore), or None: EnvPool
        :data:`ENVPOOL_ONLY`, so the others run on gymnasium."""
        for name, env_id in ENVPOOL_IDS.items():
            if self == resolve(name):
                return env_id
        return None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The obstacle kinds enabled, in gymnasium's order (stump, stairs, pit)."""
        stairs = any(v is not None for v in (self.stair_height, self.stair_width,
                                             self.stair_steps))
        enabled = (("stump", self.stump_height is not None), ("stairs", stairs),
                   ("pit", self.pit_gap is not None))
        return tuple(kind for kind, on in enabled if on)

    def stairs(self) -> dict[str, Size]:
        """The stair parameters, gymnasium's where not given."""
        given = {k: v for k, v in self._values().items()
                 if k.startswith("stair_") and v is not None}
        return {**STAIR_DEFAULTS, **given}

    def parameters(self) -> dict[str, Any]:
        """The parameters that differ from plain ground: a mapping ``resolve()`` rebuilds."""
        default = Terrain()
        return {k: v for k, v in self._values().items() if v != getattr(default, k)}

    def _values(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "given"}


_PARAMETERS = tuple(f.name for f in fields(Terrain) if f.name != "given")
_WHOLE = ("stair_width", "stair_steps")  # counted in whole terrain steps


@cache
def presets() -> dict[str, dict[str, Any]]:
    """The named terrains of ``configs/terrains.yaml``: name -> parameters."""
    path = Path(str(resources.files("fop_rl") / "configs" / "terrains.yaml"))
    return {name: entry["parameters"] or {}
            for name, entry in read_yaml(path.read_text())["presets"].items()}


def resolve(spec: str | Mapping[str, Any] | Terrain | None = None) -> Terrain:
    """A :class:`Terrain` from a preset name, a mapping of parameters (with an optional
    ``preset`` it overrides), or None (plain ground). TerrainError on anything else."""
    if isinstance(spec, Terrain):
        return spec
    if spec is None:
        return Terrain()
    given = spec if isinstance(spec, str) else dict(spec) if isinstance(spec, Mapping) else None
    if given is None:
        raise TerrainError(f"a terrain is a preset name or a mapping of parameters, got "
                           f"{spec!r}")
    params = {"preset": spec} if isinstance(spec, str) else dict(spec)
    name = params.pop("preset", None)
    if name is not None:
        known = presets()
        if name not in known:
            raise TerrainError(f"unknown terrain preset {name!r} (known: {', '.join(known)})")
        params = {**known[name], **params}
    for key, value in params.items():
        if key not in _PARAMETERS:
            raise TerrainError(f"unknown terrain parameter {key!r} (known: preset, "
                               f"{', '.join(_PARAMETERS)})")
        _check(key, value)
    return Terrain(**params, given=given)


ENVPOOL_ONLY = "simulates only the flat and hardcore terrains"  # EnvPool's walkers, both exact


def _check(key: str, value: Any) -> None:
    def fail(reason: str) -> TerrainError:
        return TerrainError(f"terrain parameter {key} {reason}, got {value!r}")

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if key == "roughness":
        if not number(value) or value < 0:
            raise fail("must be a number >= 0")
        return
    bounds = value if isinstance(value, list) else [value]
    if len(bounds) != 2 and isinstance(value, list):
        raise fail("must be a number or a range [low, high]")
    if not all(number(b) for b in bounds):
        raise fail("must be a number or a range [low, high] of numbers")
    if key in _WHOLE and not all(isinstance(b, int) for b in bounds):
        raise fail("counts whole terrain steps: use whole numbers")
    if min(bounds) < (1 if key in _WHOLE else 0) or (key not in _WHOLE and min(bounds) == 0):
        raise fail("must be >= 1" if key in _WHOLE else "must be > 0 (a size)")
    if bounds[0] > bounds[-1]:
        raise fail("is a range with low > high")


class BipedalWalkerTerrain(BipedalWalker):
    """gymnasium's BipedalWalker on a :class:`Terrain`; ``set_terrain`` changes it from the
    next episode on (a curriculum)."""

    def __init__(self, render_mode: str | None = None,
                 terrain: str | Mapping[str, Any] | Terrain | None = None):
        self.terrain_spec = resolve(terrain)
        super().__init__(render_mode=render_mode, hardcore=bool(self.terrain_spec.kinds))
        EzPickle.__init__(self, render_mode, terrain)

    def set_terrain(self, spec: str | Mapping[str, Any] | Terrain | None) -> None:
        """Generate the courses of the following episodes from ``spec``."""
        self.terrain_spec = resolve(spec)
        self.hardcore = bool(self.terrain_spec.kinds)

    def _draw(self, size: Size) -> Any:
        if not isinstance(size, list):
            return size
        low, high = size
        if isinstance(low, int) and isinstance(high, int):
            return self.np_random.integers(low, high + 1)
        return self.np_random.uniform(low, high)

    def _obstacle(self, poly: list[tuple[float, float]]) -> None:
        self.fd_polygon.shape.vertices = poly
        body = self.world.CreateStaticBody(fixtures=self.fd_polygon)
        body.color1, body.color2 = _OBSTACLE_COLORS
        self.terrain.append(body)

    def _generate_terrain(self, hardcore: bool) -> None:
        # gymnasium's state machine, with sizes drawn from the terrain's parameters: the draws
        # (and the bodies built) keep gymnasium's order, which makes both end points exact
        spec = self.terrain_spec
        kinds, stairs = spec.kinds, spec.stairs()
        state, velocity, y = "grass", 0.0, TERRAIN_HEIGHT
        counter, oneshot = TERRAIN_STARTPAD, False
        self.terrain, self.terrain_x, self.terrain_y = [], [], []
        self.ground_kinds: list[str] = []  # what lies on each terrain step (ground_at)
        original_y, stair_steps, stair_width, stair_height = 0.0, 0, 0, 0
        for i in range(TERRAIN_LENGTH):
            x = i * TERRAIN_STEP
            self.terrain_x.append(x)
            if state == "grass" and not oneshot:
                velocity = 0.8 * velocity + 0.01 * np.sign(TERRAIN_HEIGHT - y)
                if i > TERRAIN_STARTPAD:
                    velocity += spec.roughness * self.np_random.uniform(-1, 1) / SCALE
                y += velocity
            elif state == "pit" and oneshot:
                # two walls one step wide, the second `distance` steps after the first
                distance = self._draw(_plus_one(spec.pit_gap))
                wall = [(x, y), (x + TERRAIN_STEP, y), (x + TERRAIN_STEP, y - PIT_DEPTH *
                        TERRAIN_STEP), (x, y - PIT_DEPTH * TERRAIN_STEP)]
                self._obstacle(wall)
                self._obstacle([(p[0] + TERRAIN_STEP * distance, p[1]) for p in wall])
                counter = int(distance) + 2
                original_y = y
            elif state == "pit":
                y = original_y
                if counter > 1:
                    y -= PIT_DEPTH * TERRAIN_STEP
            elif state == "stump" and oneshot:
                height = self._draw(spec.stump_height)
                width = height if spec.stump_width is None else self._draw(spec.stump_width)
                self._obstacle([(x, y), (x + width * TERRAIN_STEP, y),
                                (x + width * TERRAIN_STEP, y + height * TERRAIN_STEP),
                                (x, y + height * TERRAIN_STEP)])
                counter = math.ceil(width)
            elif state == "stairs" and oneshot:
                sign = +1 if self.np_random.random() > 0.5 else -1
                stair_height = sign * self._draw(stairs["stair_height"])
                stair_width = self._draw(stairs["stair_width"])
                stair_steps = self._draw(stairs["stair_steps"])
                original_y = y
                for s in range(stair_steps):
                    low, high = y + (-1 + s * stair_height) * TERRAIN_STEP, y + (
                        s * stair_height) * TERRAIN_STEP
                    left, right = (x + (s * stair_width) * TERRAIN_STEP,
                                   x + ((1 + s) * stair_width) * TERRAIN_STEP)
                    self._obstacle([(left, high), (right, high), (right, low), (left, low)])
                counter = stair_steps * stair_width
            elif state == "stairs":
                s = stair_steps * stair_width - counter - stair_height
                n = s / stair_width
                y = original_y + (n * stair_height) * TERRAIN_STEP
            oneshot = False
            self.terrain_y.append(y)
            self.ground_kinds.append(state if state != "grass" else
                                     "flat" if i <= TERRAIN_STARTPAD or not spec.roughness
                                     else "rough")
            counter -= 1
            if counter == 0:
                counter = self.np_random.integers(TERRAIN_GRASS // 2, TERRAIN_GRASS)
                if state == "grass" and kinds:
                    state = kinds[self.np_random.integers(1, len(kinds) + 1) - 1]
                else:
                    state = "grass"
                oneshot = True
        self._build_ground()

    def ground_at(self, x: float) -> str:
        """What lies under ``x`` (metres along the course): stump, stairs, pit, rough (the
        grass between obstacles) or flat (the start pad, or grass of roughness 0)."""
        i = min(max(int(x // TERRAIN_STEP), 0), len(self.ground_kinds) - 1)
        return self.ground_kinds[i]

    def next_obstacle(self, x: float) -> tuple[str, float] | None:
        """The first obstacle that starts ahead of ``x`` and its distance in terrain steps."""
        i = min(max(int(x // TERRAIN_STEP) + 1, 0), len(self.ground_kinds))
        for j in range(i, len(self.ground_kinds)):
            if self.ground_kinds[j] not in GROUND and self.ground_kinds[j - 1] in GROUND:
                return self.ground_kinds[j], j - x / TERRAIN_STEP
        return None

    def _build_ground(self) -> None:
        """The ground line as edges (physics) and polygons down to 0 (drawing)."""
        self.terrain_poly = []
        for i in range(TERRAIN_LENGTH - 1):
            edge = [(self.terrain_x[i], self.terrain_y[i]),
                    (self.terrain_x[i + 1], self.terrain_y[i + 1])]
            self.fd_edge.shape.vertices = edge
            body = self.world.CreateStaticBody(fixtures=self.fd_edge)
            body.color1 = body.color2 = (76, 255 if i % 2 == 0 else 204, 76)
            self.terrain.append(body)
            self.terrain_poly.append(([*edge, (edge[1][0], 0), (edge[0][0], 0)],
                                      (102, 153, 76)))
        self.terrain.reverse()


def _plus_one(size: Size) -> Size:
    """A pit's opening -> the distance between its walls (gymnasium draws the latter)."""
    return [b + 1 for b in size] if isinstance(size, list) else size + 1
