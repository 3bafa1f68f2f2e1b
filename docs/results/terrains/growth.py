"""When P grew in each fop-momentum run of the ladder, beside what the run's policy did.

    python docs/results/terrains/growth.py RUNS_DIR --out OUT [--label fop-momentum]

Exploratory, not part of the study's fixed test: for every complete run of the label under
RUNS_DIR (the ladder's layout), the largest eigenvalue of P over the policy's layers (action
head and log_std included) and over the value function's, as TensorBoard's progress.csv logged
them after each update (FOP's diagnostics); the step at which the policy's first exceeded 10 and
1,000; the run's evaluation peak and the first evaluation 150 or more below the best so far;
its last model's 50-episode return. Writes OUT/growth.md and OUT/growth.png (the policy's
largest eigenvalue over steps, one panel per rung).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from fop_rl import stats
from fop_rl.report import find_runs

VALUE_LAYERS = ("mlp_extractor.value_net.", "value_net.")  # SB3's value network
THRESHOLDS = (10, 1000)
DROP = 150  # a fall of the evaluation return below the best so far that no noise explains


def largest(progress: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, and the largest eigenvalue of P over the policy's and the value function's
    layers after each update (a resumed run's repeated rows sorted in)."""
    with progress.open() as f:
        rows = list(csv.DictReader(f))
    layers = [k.split("/")[1] for k in rows[0] if k.startswith("fop/") and k.endswith("/eig_max")]
    steps, policy, value = [], [], []
    for row in rows:
        if not row.get("time/total_timesteps") or not row.get(f"fop/{layers[0]}/eig_max"):
            continue  # a row without an update (logged before the first one)
        eig = {name: float(row[f"fop/{name}/eig_max"]) for name in layers}
        steps.append(int(float(row["time/total_timesteps"])))
        policy.append(max(v for k, v in eig.items() if not k.startswith(VALUE_LAYERS)))
        value.append(max(v for k, v in eig.items() if k.startswith(VALUE_LAYERS)))
    order = np.argsort(steps, kind="stable")
    return np.array(steps)[order], np.array(policy)[order], np.array(value)[order]


def first(steps: np.ndarray, values: np.ndarray, threshold: float) -> str:
    above = np.nonzero(values > threshold)[0]
    return f"{steps[above[0]] / 1000:.0f}k" if len(above) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--label", default="fop-momentum", help="a FOP optimizer's label")
    args = parser.parse_args()
    runs = sorted((r for r in find_runs(args.runs_dir)[0] if r.label == args.label
                   and r.complete),
                  key=lambda r: (r.env_id, r.seed))
    rungs = sorted({r.env_id for r in runs})
    figure, axes = plt.subplots(1, len(rungs), figsize=(3.2 * len(rungs), 3), sharey=True,
                                squeeze=False)
    lines = ["| rung | seed | last model | evaluation peak (step) | first evaluation "
             f"{DROP} below the best | policy's P > {THRESHOLDS[0]} | > {THRESHOLDS[1]} | "
             "policy's P at the end | value function's P at the end |", "|---" * 9 + "|"]
    for run in runs:
        seed_dir = args.runs_dir / run.env_id / run.label / f"seed-{run.seed}"
        steps, policy, value = largest(seed_dir / "tb" / "progress.csv")
        best = stats.best_so_far(run.returns)
        dropped = np.nonzero(run.returns <= best - DROP)[0]
        peak = int(np.argmax(run.returns))
        rung = run.env_id.rsplit("-v0-", 1)[-1]
        last = f"{run.final_eval[1]:.1f}" if run.final_eval else "-"
        lines.append(f"| {rung} | {run.seed} | {last} | {run.returns[peak]:.1f} "
                     f"({run.timesteps[peak] / 1000:.0f}k) | "
                     + (f"{run.timesteps[dropped[0]] / 1000:.0f}k" if len(dropped) else "-")
                     + " | " + " | ".join(first(steps, policy, t) for t in THRESHOLDS)
                     + f" | {policy[-1]:.3g} | {value[-1]:.3g} |")
        ax = axes[0, rungs.index(run.env_id)]
        ax.plot(steps, policy, label=f"seed {run.seed}")
        ax.set_title(rung)
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("largest eigenvalue of P,\npolicy's layers")
    figure.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    name = "growth" if args.label == "fop-momentum" else f"growth-{args.label}"
    figure.savefig(args.out / f"{name}.png", dpi=100)
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
