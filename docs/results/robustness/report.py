"""The robustness study's report (README.md: the design) from its committed run records.

    python docs/results/robustness/report.py [RECORDS] [--out DIR] [--reps 2000]

Writes maps.md (per-cell tables, the pre-registered test, the secondary readings) and one heat
map per grid and metric (<grid>-<metric>.png) into DIR (default: this folder).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fop_rl.stats import probability_of_improvement

HERE = Path(__file__).parent
GRIDS = {"momentum": ("momentum", "fop-momentum"), "adam": ("adam", "fop-adam")}
THRESHOLD, OTHER_THRESHOLDS = 100.0, (0.0, 200.0)
METRICS = {"last": "last model, 50 episodes", "best": "best-so-far at 500k"}
CELL = re.compile(r"lr-(?P<lr>[0-9.e+-]+?)(?:-m-(?P<m>[0-9.]+))?$")


@dataclass(frozen=True)
class Cell:
    lr: float
    momentum: float | None
    name: str


def load(records: Path) -> dict[str, dict[Cell, dict[str, dict[int, dict[str, float]]]]]:
    """grid -> cell -> optimizer -> seed -> {"last", "best"}; a failed run scores -inf."""
    data: dict = {}
    for status_file in sorted(records.glob("*/*/*/*/seed-*/run.json")):
        seed_dir = status_file.parent
        opt, cell_dir, grid = seed_dir.parent.name, seed_dir.parents[2], seed_dir.parents[3].name
        match = CELL.match(cell_dir.name)
        if grid not in GRIDS or match is None:
            continue
        cell = Cell(float(match["lr"]), float(match["m"]) if match["m"] else None, cell_dir.name)
        scores = {"last": -np.inf, "best": -np.inf}
        final = seed_dir / "final_evaluation.json"
        if final.exists():
            scores["last"] = float(json.loads(final.read_text())["mean"])
        evaluations = seed_dir / "evaluations.npz"
        if evaluations.exists():
            with np.load(evaluations) as npz:
                means = npz["results"].reshape(len(npz["timesteps"]), -1).mean(axis=1)
            if means.size:
                scores["best"] = float(means.max())
        seed = int(seed_dir.name.removeprefix("seed-"))
        data.setdefault(grid, {}).setdefault(cell, {}).setdefault(opt, {})[seed] = scores
    return data


def trained_area(cells: list[dict[int, dict[str, float]]], threshold: float,
                 rng: np.random.Generator | None = None) -> float:
    """Mean over cells of the fraction of seeds whose last model reaches ``threshold``; with
    ``rng``, the seeds of each cell resampled with replacement first."""
    fractions = []
    for runs in cells:
        trained = np.array([r["last"] >= threshold for r in runs.values()], dtype=float)
        if rng is not None:
            trained = rng.choice(trained, size=trained.size, replace=True)
        fractions.append(trained.mean())
    return float(np.mean(fractions))


def area_difference(grid: dict, base: str, fop: str, threshold: float, reps: int,
                    keep=lambda cell: True, seed: int = 0) -> tuple[float, float, float, int]:
    """FOP's trained area minus its base's over the cells both have runs in (and ``keep``
    accepts), with a percentile-bootstrap CI resampling seeds within each (cell, optimizer)."""
    cells = [c for c in grid if base in grid[c] and fop in grid[c] and keep(c)]
    if not cells:
        return np.nan, np.nan, np.nan, 0
    b, f = [grid[c][base] for c in cells], [grid[c][fop] for c in cells]
    point = trained_area(f, threshold) - trained_area(b, threshold)
    rng = np.random.default_rng(seed)
    draws = [trained_area(f, threshold, rng) - trained_area(b, threshold, rng)
             for _ in range(reps)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return point, float(low), float(high), len(cells)


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "supported"
    return "contradicted" if high < 0 else "not shown"


def paper_rule(base: np.ndarray, fop: np.ndarray) -> bool:
    """The paper's highlight: FOP's mean higher by at least one (pooled) standard deviation."""
    if not (np.all(np.isfinite(base)) and np.all(np.isfinite(fop))) or min(len(base), len(fop)) < 2:
        return bool(np.all(np.isfinite(fop)) and not np.all(np.isfinite(base)))
    pooled = np.sqrt((np.var(base, ddof=1) + np.var(fop, ddof=1)) / 2)
    return bool(fop.mean() - base.mean() >= pooled)


def values(runs: dict[int, dict[str, float]], metric: str) -> np.ndarray:
    return np.array([runs[s][metric] for s in sorted(runs)])


def text(x: float) -> str:
    return "failed" if x == -np.inf else f"{x:.1f}"


def cell_table(name: str, grid: dict, base: str, fop: str, reps: int) -> list[str]:
    lines = [f"| cell | seeds ({base} / {fop}) | {base} last | {fop} last | {base} best | "
             f"{fop} best | P({fop} > {base}), last | paper's rule, last |",
             "|---|---|---|---|---|---|---|---|"]
    for cell in sorted(grid, key=lambda c: (c.momentum or 0, c.lr)):
        runs = grid[cell]
        if base not in runs or fop not in runs:
            continue
        b, f = runs[base], runs[fop]
        p, lo, hi = probability_of_improvement(values(f, "last"), values(b, "last"), 0.95, reps)
        highlight = paper_rule(values(b, "last"), values(f, "last"))
        lines.append(
            f"| {cell.name} | {len(b)} / {len(f)} | {text(np.median(values(b, 'last')))} | "
            f"{text(np.median(values(f, 'last')))} | {text(np.median(values(b, 'best')))} | "
            f"{text(np.median(values(f, 'best')))} | {p:.2f} [{lo:.2f}, {hi:.2f}] | "
            f"{'FOP better' if highlight else ''} |")
    return [f"### {name}: medians over seeds", "", *lines, ""]


def heat_map(grid: dict, base: str, fop: str, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = sorted({c.lr for c in grid})
    moms = sorted({c.momentum for c in grid}, key=lambda m: m or 0)
    fig, axes = plt.subplots(2, 1, figsize=(1.1 * len(lrs) + 2, 1.0 * len(moms) * 2 + 1.5))
    for ax, opt in zip(axes, (base, fop), strict=True):
        table = np.full((len(moms), len(lrs)), np.nan)
        for cell, runs in grid.items():
            if opt in runs:
                v = values(runs[opt], metric)
                table[moms.index(cell.momentum), lrs.index(cell.lr)] = np.median(
                    np.where(np.isfinite(v), v, -150.0))
        image = ax.imshow(table, cmap="viridis", vmin=-150, vmax=300, aspect="auto")
        for (i, j), x in np.ndenumerate(table):
            if np.isfinite(x):
                ax.text(j, i, f"{x:.0f}", ha="center", va="center", color="w", fontsize=8)
        for cell, runs in grid.items():
            if opt == fop and base in runs and fop in runs and paper_rule(
                    values(runs[base], metric), values(runs[fop], metric)):
                ax.add_patch(plt.Rectangle((lrs.index(cell.lr) - 0.5,
                                            moms.index(cell.momentum) - 0.5), 1, 1,
                                           fill=False, edgecolor="tab:blue", linewidth=3))
        ax.set_xticks(range(len(lrs)), [f"{x:g}" for x in lrs])
        ax.set_yticks(range(len(moms)), ["-" if m is None else f"{m:g}" for m in moms])
        ax.set_xlabel("learning rate")
        ax.set_ylabel("momentum" if moms[0] is not None else "")
        ax.set_title(f"{opt}: median {METRICS[metric]}")
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def region(grid_name: str):
    """The paper's region of largest gain (the design's secondary reading)."""
    if grid_name == "momentum":
        return lambda c: c.lr >= 3e-3 and (c.momentum or 0) >= 0.9
    return lambda c: c.lr in (1e-4, 3e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="?", type=Path, default=HERE / "records")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    data = load(args.records)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["# The robustness study: maps and test", "",
             f"From {sum(len(s) for g in data.values() for c in g.values() for s in c.values())}"
             " run records (`python docs/results/robustness/report.py`). A run trains if its "
             f"last model's 50-episode mean return is at least {THRESHOLD:g}.", ""]
    for name, (base, fop) in GRIDS.items():
        grid = data.get(name)
        if not grid:
            continue
        seeds = {s for runs in grid.values() for opt in runs.values() for s in opt}
        complete = all(len(grid[c].get(o, {})) == 3 for c in grid for o in (base, fop))
        lines += [f"## {name}: {base} and {fop}, {len(grid)} cells, seeds "
                  f"{','.join(map(str, sorted(seeds)))}"
                  + ("" if complete else " (interim: not every run is in; not a reading)"), ""]
        point, low, high, n = area_difference(grid, base, fop, THRESHOLD, args.reps)
        reading = (f"**{verdict(low, high)}**" if complete
                   else f"the rule would read {verdict(low, high)} (interim: not a reading)")
        lines += [f"**The test:** trained area {fop} minus {base} over {n} cells: "
                  f"{point:+.3f} [{low:+.3f}, {high:+.3f}]: {reading}.", ""]
        for t in OTHER_THRESHOLDS:
            p, lo, hi, n = area_difference(grid, base, fop, t, args.reps)
            lines.append(f"- Secondary, threshold {t:g}: {p:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                         f"({n} cells)")
        p, lo, hi, n = area_difference(grid, base, fop, THRESHOLD, args.reps,
                                       keep=region(name))
        lines += [f"- Secondary, the paper's region of largest gain: {p:+.3f} [{lo:+.3f}, "
                  f"{hi:+.3f}] ({n} cells)", ""]
        lines += cell_table(name, grid, base, fop, args.reps)
        for metric in METRICS:
            heat_map(grid, base, fop, metric, args.out / f"{name}-{metric}.png")
            lines += [f"![{name}, {METRICS[metric]}]({name}-{metric}.png)", ""]
    (args.out / "maps.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
