"""The policy-cap study's pre-registered test (README.md: the design) from its records.

    python docs/results/policy-cap/verdict.py RECORDS --out OUT [--seeds 0-4] [--reps 2000]

P(fop-pcap-momentum > momentum) and P(fop-pcap-momentum > fop-momentum) with the two rungs as
strata (rliable's probability of improvement and stratified bootstrap) on each metric, the
lost runs per arm with Fisher's exact test, and the per-seed table. Writes OUT/verdict.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rliable import library as rly
from scipy.stats import fisher_exact

from fop_rl.report import find_runs
from fop_rl.stats import best_so_far, improvement
from fop_rl.sweep import parse_seeds

CAP, ARMS = "fop-pcap-momentum", ("momentum", "fop-momentum")
RUNGS = ("hardcore-25", "hardcore-38")
EARLY = 200_000  # steps: the early AUC's window
LOST_BELOW, LOST_AFTER = 10.0, 130.0  # a lost run: last model below 10 after an evaluation >= 130


def metrics(run) -> dict[str, float]:
    best = best_so_far(run.returns)
    return {"last model": run.final_eval[1] if run.final_eval else np.nan,
            "best-so-far": float(best[-1]),
            "early AUC": float(best[run.timesteps <= EARLY].mean()),
            "peak": float(run.returns.max())}


def lost(m: dict[str, float]) -> bool:
    return m["last model"] < LOST_BELOW and m["peak"] >= LOST_AFTER


def pooled(x: np.ndarray, y: np.ndarray, reps: int) -> tuple[float, float, float]:
    """P(a run of x beats a run of y), averaged over strata (columns), with its CI."""
    np.random.seed(0)  # rliable resamples with numpy's global generator
    point, interval = rly.get_interval_estimates({"p": (x, y)}, improvement, reps=reps,
                                                 confidence_interval_size=0.95)
    return float(point["p"]), float(interval["p"][0][0]), float(interval["p"][1][0])


def reading(low: float, high: float, ahead: str, behind: str) -> str:
    return ahead if low > 0.5 else behind if high < 0.5 else "not ordered"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    wanted = set(parse_seeds(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    table: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for run in find_runs(args.records)[0]:
        rung = run.env_id.rsplit("-v0-", 1)[-1]
        if run.complete and run.seed in wanted and rung in RUNGS:
            table.setdefault((rung, run.label), {})[run.seed] = metrics(run)
    labels = (CAP, *ARMS)
    seeds = sorted(set.intersection(*(set(table.get((r, a), {})) for r in RUNGS
                                      for a in labels)))
    complete = set(seeds) == set(range(5))  # the design's seeds: anything less is interim
    lines = ["# The policy-cap study: the test", "",
             f"Seeds {','.join(map(str, seeds))} (those complete in every rung and arm)"
             + ("" if complete else "; interim: not a reading") + ".", ""]
    if not seeds:
        args.out.joinpath("verdict.md").write_text("\n".join(lines) + "\n")
        return

    def scores(label: str, metric: str) -> np.ndarray:  # (seeds, rungs)
        return np.array([[table[(r, label)][s][metric] for r in RUNGS] for s in seeds])

    lines += ["| metric | P(cap > momentum) | reading | P(cap > fop-momentum) | reading |",
              "|---|---|---|---|---|"]
    for metric in ("last model", "best-so-far", "early AUC"):
        row = [metric]
        for arm, ahead, behind in (("momentum", "ahead of momentum", "behind momentum"),
                                   ("fop-momentum", "the cap helps", "the cap hurts")):
            p, lo, hi = pooled(scores(CAP, metric), scores(arm, metric), args.reps)
            row += [f"{p:.2f} [{lo:.2f}, {hi:.2f}]", reading(lo, hi, ahead, behind)]
        lines.append("| " + " | ".join(row) + " |")
    counts = {a: sum(lost(table[(r, a)][s]) for r in RUNGS for s in seeds) for a in labels}
    n = len(seeds) * len(RUNGS)
    _, p_value = fisher_exact([[counts[CAP], n - counts[CAP]],
                               [counts["fop-momentum"], n - counts["fop-momentum"]]],
                              alternative="less")
    lines += ["", f"Lost runs (last model below {LOST_BELOW:g} after an evaluation of "
              f"{LOST_AFTER:g} or more), of {n}: "
              + ", ".join(f"{a} {counts[a]}" for a in labels)
              + f". Fisher's exact test, fewer with the cap than fop-momentum: p = "
              f"{p_value:.3f}" + (" (the cap removes them)" if p_value < 0.05 else "") + ".",
              "", "| rung | seed | " + " | ".join(f"{a}: last / best / early AUC"
                                                  for a in labels) + " |",
              "|---|---|" + "---|" * len(labels)]
    for rung in RUNGS:
        for s in seeds:
            cells = []
            for a in labels:
                m = table[(rung, a)][s]
                cells.append(f"{m['last model']:.1f} / {m['best-so-far']:.1f} / "
                             f"{m['early AUC']:.1f}" + (" (lost)" if lost(m) else ""))
            lines.append(f"| {rung} | {s} | " + " | ".join(cells) + " |")
    args.out.joinpath("verdict.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
