"""The terrain study's test: does FOP's standing against momentum rise with the difficulty?

    python docs/results/terrains/trend.py RUNS_DIR --rungs A B C D --out OUT [--reps 2000]

RUNS_DIR holds the ladder's runs in the standard layout (one ``fop_rl-BipedalWalkerTerrain-v0-
<rung>`` folder per rung); a rung's difficulty is the common start's return on it
(presets/<rung>.json). For each rung and each of three metrics (the last model's 50-episode
return, the best-so-far evaluation at the budget, the area under the best-so-far curve over
the first 200k steps), P(fop-momentum better than momentum) (Mann-Whitney, ties half) with its
stratified-bootstrap CI; then the trend: the least-squares slope of P against the rung's index
(0 = easiest), with a percentile CI from resampling seeds within each (rung, optimizer). Only
seeds that every label of a rung has complete count. Writes OUT/trend.md, OUT/trend.json and
two figures: the last models' median [95% CI] per optimizer against difficulty, and P with its
CI against difficulty.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fop_rl import stats
from fop_rl.report import find_runs

ENV = "fop_rl-BipedalWalkerTerrain-v0-"
LABELS = ("momentum", "adam", "fop-momentum")
EARLY = 200_000  # steps: the early part, where fop-momentum led on the walker
METRICS = ("last model", "best-so-far", "early AUC")
HERE = Path(__file__).parent


def metrics(runs_dir: Path, rung: str) -> dict:
    """metric -> label -> per-seed values, on the seeds complete for every label (listed
    under "seeds")."""
    by_label: dict[str, dict[int, dict[str, float]]] = {label: {} for label in LABELS}
    for run in find_runs(runs_dir)[0]:
        if run.env_id != ENV + rung or run.label not in LABELS or not run.complete:
            continue
        best = stats.best_so_far(run.returns)
        early = best[run.timesteps <= EARLY]
        by_label[run.label][run.seed] = {
            "last model": run.final_eval[1] if run.final_eval else np.nan,
            "best-so-far": float(best[-1]),
            "early AUC": float(early.mean()) if early.size else np.nan}
    seeds = sorted(set.intersection(*(set(v) for v in by_label.values())))
    out = {m: {label: np.array([by_label[label][s][m] for s in seeds]) for label in LABELS}
           for m in METRICS}
    return {**out, "seeds": seeds}


def slope(p: np.ndarray) -> float:
    return float(np.polyfit(np.arange(len(p)), p, 1)[0])


def trend(per_rung: list[dict[str, np.ndarray]], reps: int, seed: int = 0
          ) -> tuple[float, float, float]:
    """The slope of P(fop-momentum > momentum) over rungs, and its bootstrap CI."""
    point = slope(np.array([stats.improvement(r["fop-momentum"][:, None],
                                              r["momentum"][:, None]) for r in per_rung]))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        ps = []
        for r in per_rung:
            x, y = r["fop-momentum"], r["momentum"]
            ps.append(stats.improvement(rng.choice(x, len(x))[:, None],
                                        rng.choice(y, len(y))[:, None]))
        draws.append(slope(np.array(ps)))
    low, high = np.percentile(draws, [2.5, 97.5])
    return point, float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--rungs", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    difficulty = [json.loads((HERE / "presets" / f"{r}.json").read_text())["mean"]
                  for r in args.rungs]
    table = {rung: metrics(args.runs_dir, rung) for rung in args.rungs}
    out: dict = {"rungs": args.rungs, "difficulty": difficulty, "metrics": {}}
    lines = ["| metric | " + " | ".join(f"{r} ({d:.0f})" for r, d in zip(args.rungs, difficulty,
                                                                         strict=True))
             + " | slope of P per rung [95% CI] |", "|---" * (len(args.rungs) + 2) + "|"]
    for metric in METRICS:
        per_rung = [table[r][metric] for r in args.rungs]
        if min(len(r["momentum"]) for r in per_rung) < 2:
            continue  # a rung without two complete seeds of every label
        ps = [stats.probability_of_improvement(r["fop-momentum"], r["momentum"], 0.95,
                                               args.reps) for r in per_rung]
        b, low, high = trend(per_rung, args.reps)
        out["metrics"][metric] = {
            "seeds": [len(r["momentum"]) for r in per_rung],
            "p_fop_vs_momentum": [list(p) for p in ps], "slope": [b, low, high],
            "per_seed": {r: {k: v.tolist() for k, v in table[r][metric].items()}
                         for r in args.rungs}}
        lines.append(f"| P(fop-momentum > momentum), {metric} | "
                     + " | ".join(f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, lo, hi in ps)
                     + f" | {b:+.3f} [{low:+.3f}, {high:+.3f}] |")
    lines += ["", "| rung | label | seed | last model (50 episodes) | best-so-far at the budget "
              "| early AUC (first 200k) |", "|---|---|---|---|---|---|"]
    for rung in args.rungs:
        for label in LABELS:
            for i, seed in enumerate(table[rung]["seeds"]):
                values = " | ".join(f"{table[rung][m][label][i]:.1f}" for m in METRICS)
                lines.append(f"| {rung} | {label} | {seed} | {values} |")
    (args.out / "trend.md").write_text("\n".join(lines) + "\n")
    (args.out / "trend.json").write_text(json.dumps(out, indent=1) + "\n")
    print("\n".join(lines))
    if "last model" in out["metrics"]:
        figures(args, table, difficulty, out["metrics"]["last model"])


def figures(args: argparse.Namespace, table: dict, difficulty: list[float], last: dict) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label in LABELS:
        medians = [stats.median_ci(table[r]["last model"][label][:, None], 0.95, args.reps)
                   for r in args.rungs]
        mid = [m[0][0] for m in medians]
        ax.errorbar(difficulty, mid, yerr=[[m - lo[0] for m, (_, lo, _) in zip(mid, medians,
                                                                                 strict=True)],
                                           [hi[0] - m for m, (_, _, hi) in zip(mid, medians,
                                                                                 strict=True)]],
                    marker="o", capsize=3, label=label)
    ax.invert_xaxis()
    ax.set_xlabel("difficulty: the start's return on the rung (harder to the right)")
    ax.set_ylabel("last model, 50 episodes: median [95% CI]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "last-models.png", dpi=110)
    fig, ax = plt.subplots(figsize=(6, 4))
    p = np.array(last["p_fop_vs_momentum"])
    ax.errorbar(difficulty, p[:, 0], yerr=[p[:, 0] - p[:, 1], p[:, 2] - p[:, 0]], marker="o",
                capsize=3)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.invert_xaxis()
    ax.set_ylim(0, 1)
    ax.set_xlabel("difficulty: the start's return on the rung (harder to the right)")
    ax.set_ylabel("P(fop-momentum better than momentum)")
    fig.tight_layout()
    fig.savefig(args.out / "p-improvement.png", dpi=110)


if __name__ == "__main__":
    main()
