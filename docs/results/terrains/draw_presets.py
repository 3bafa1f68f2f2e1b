"""Draw the whole course (200 terrain steps) of every terrain preset, one row each.

    python docs/results/terrains/draw_presets.py OUT.png [--seed 0]

Each row is the course of the preset's first episode with that seed: the ground (green) and
the obstacles (grey), in terrain steps; the walker starts at step 10.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Polygon

import fop_rl  # noqa: F401  (registers the terrain walker)
from fop_rl.terrain import ENV_ID, TERRAIN_STEP, presets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = list(presets())
    walkers = []
    for name in names:
        env = gym.make(ENV_ID, terrain=name)
        env.reset(seed=args.seed)
        walkers.append(env.unwrapped)
    # one vertical scale for every row: the tallest course's span
    span = max(max(w.terrain_y) - min(w.terrain_y) for w in walkers) / TERRAIN_STEP + 8
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 0.3 + span / 200 * 11 * len(names)),
                             sharex=True)
    for ax, name, walker in zip(axes, names, walkers, strict=True):
        for poly, _ in walker.terrain_poly:
            ax.add_patch(Polygon([(x / TERRAIN_STEP, y / TERRAIN_STEP) for x, y in poly],
                                 color="#669944", lw=0))
        for body in walker.terrain:
            vertices = body.fixtures[0].shape.vertices
            if len(vertices) == 4:  # an obstacle (the ground is made of edges)
                ax.add_patch(Polygon([(x / TERRAIN_STEP, y / TERRAIN_STEP) for x, y in vertices],
                                     facecolor="#dddddd", edgecolor="#777777", lw=0.6))
        ys = [y / TERRAIN_STEP for y in walker.terrain_y]
        middle = (min(ys) + max(ys)) / 2
        ax.set_ylim(middle - span / 2, middle + span / 2)
        ax.set_xlim(0, 200)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        walker.close()
    axes[-1].set_xlabel("terrain steps (14/30 m each)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
