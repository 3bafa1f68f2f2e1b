"""Aggregate seeds of a runs directory into curves, tables and figures with bootstrap CIs.

Reads every ``<env_id>/<label>/seed-<n>/evaluations.npz`` (SB3 EvalCallback format) under the
runs directory, and each run's ``final_evaluation.json`` where it has one (its last model on
many deterministic episodes: the best-so-far of 5-episode evaluations is a maximum over noisy
estimates, biased upward), and writes ``<env_id>.png``, ``report.md``, ``curves.csv`` and
``report.json``.
Linked folders are followed, so a comparison can be assembled from links to runs made elsewhere
(the label is the link's name).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import warnings
import zipfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fop_rl import stats
from fop_rl.references import References, check
from fop_rl.rundir import EVALUATIONS, FINAL_EVALUATION, RunError, read_status

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_SEEDS = 5
_SEED_DIR = re.compile(r"^seed-(\d+)$")


@dataclass
class Run:
    env_id: str
    label: str
    seed: int
    timesteps: np.ndarray
    returns: np.ndarray  # each evaluation's mean return
    final_eval: tuple[int, float] | None = None  # (episodes, mean return) of the last model
    wall_time_s: float | None = None  # from run.json, summed over resumptions
    versions: dict[str, str] | None = None
    complete: bool = False  # run.json says it trained all its steps
    folder: Path | None = None  # the run's seed-<n> folder


@dataclass
class Group:
    """One (env, label): its seeds on a common grid, and the statistics over them."""

    env_id: str
    label: str
    seeds: list[int]
    grid: np.ndarray
    values: np.ndarray  # (n_seeds, len(grid)) best-so-far
    median: np.ndarray
    median_low: np.ndarray
    median_high: np.ndarray
    iqm: np.ndarray
    iqm_low: np.ndarray
    iqm_high: np.ndarray
    # the evaluations themselves (not best-so-far): median over seeds and its CI
    eval_median: np.ndarray
    eval_low: np.ndarray
    eval_high: np.ndarray
    final_eval: np.ndarray | None = None  # per seed, when every seed has one
    final_eval_episodes: int | None = None
    wall_times: list[float] = field(default_factory=list)  # of the seeds that recorded one
    versions: list[dict[str, str]] = field(default_factory=list)  # each distinct set once

    @property
    def final(self) -> np.ndarray:
        return self.values[:, -1]


def find_runs(runs_dir: Path) -> tuple[list[Run], list[str]]:
    """Every readable run under ``runs_dir``, and a warning per file that could not be used."""
    runs, problems = [], []
    for path in _evaluation_files(runs_dir):
        seed_dir = path.parent
        match = _SEED_DIR.match(seed_dir.name)
        if not match or seed_dir.parent == runs_dir or seed_dir.parent.parent == runs_dir:
            continue  # not <env>/<label>/seed-<n>/ (a checkpoint's copy, for instance)
        try:
            with np.load(path) as data:
                timesteps, results = data["timesteps"], data["results"]
            if timesteps.ndim != 1 or len(timesteps) == 0 or results.shape[0] != len(timesteps):
                raise ValueError("no evaluations, or timesteps and results disagree")
            means = results.reshape(len(timesteps), -1).mean(axis=1)
            if not np.all(np.isfinite(means)):
                raise ValueError("non-finite returns")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            problems.append(f"skipped {path}: unreadable or empty ({e})")
            continue
        try:
            status = read_status(seed_dir) or {}
        except RunError as e:
            problems.append(f"{e}; its wall time and versions left out")
            status = {}
        runs.append(Run(seed_dir.parent.parent.name, seed_dir.parent.name, int(match[1]),
                        timesteps.astype(np.int64), means,
                        _final_evaluation(seed_dir, problems), status.get("wall_time_s"),
                        status.get("versions"), status.get("status") == "complete", seed_dir))
    return runs, problems


def _final_evaluation(seed_dir: Path, problems: list[str]) -> tuple[int, float] | None:
    path = seed_dir / FINAL_EVALUATION
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        episodes, mean = int(record["episodes"]), float(record["mean"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        problems.append(f"skipped {path}: unreadable ({e})")
        return None
    return episodes, mean


def _evaluation_files(runs_dir: Path) -> list[Path]:
    """Every evaluations file under ``runs_dir``, through linked folders (each real folder once,
    so that a link cycle ends)."""
    found, seen = [], set()
    for root, dirs, files in os.walk(runs_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        if EVALUATIONS in files:
            found.append(Path(root) / EVALUATIONS)
    return sorted(found)


def aggregate(runs: list[Run], level: float, reps: int, seed: int = 0
              ) -> tuple[dict[str, dict[str, Group]], list[str]]:
    """Group runs by (env, label) and compute curves with CIs on each group's common grid."""
    problems = []
    by_group: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_group.setdefault((run.env_id, run.label), []).append(run)
    groups: dict[str, dict[str, Group]] = {}
    for (env_id, label), members in sorted(by_group.items()):
        members.sort(key=lambda r: r.seed)
        if len(members) < MIN_SEEDS:
            problems.append(f"{env_id}/{label}: only {len(members)} seed(s); fewer than "
                            f"{MIN_SEEDS} make wide, unreliable intervals")
        lasts = {int(r.timesteps[-1]) for r in members}
        if len(lasts) > 1:
            problems.append(f"{env_id}/{label}: seeds end at different steps ({min(lasts)} to "
                            f"{max(lasts)}); compared up to {min(lasts)}")
        timesteps = [r.timesteps for r in members]
        grid, values = stats.on_grid(timesteps, [stats.best_so_far(r.returns) for r in members])
        median, m_low, m_high = stats.median_ci(values, level, reps, seed)
        iqm, i_low, i_high = stats.iqm_ci(values, level, reps, seed)
        _, returns = stats.on_grid(timesteps, [r.returns for r in members])
        group = Group(env_id, label, [r.seed for r in members], grid, values, median, m_low,
                      m_high, iqm, i_low, i_high,
                      *stats.median_ci(returns, level, reps, seed),
                      wall_times=[r.wall_time_s for r in members if r.wall_time_s is not None],
                      versions=_distinct(r.versions for r in members if r.versions is not None))
        finals = [r.final_eval for r in members if r.final_eval is not None]
        if finals and len(finals) < len(members):
            problems.append(f"{env_id}/{label}: {len(finals)} of {len(members)} seeds have a "
                            "final evaluation; the final-model table leaves this label out")
        elif finals and len({episodes for episodes, _ in finals}) > 1:
            problems.append(f"{env_id}/{label}: final evaluations of different lengths; the "
                            "final-model table leaves this label out")
        elif finals:
            group.final_eval = np.array([mean for _, mean in finals])
            group.final_eval_episodes = finals[0][0]
        groups.setdefault(env_id, {})[label] = group
    return groups, problems


def summarize(groups: dict[str, dict[str, Group]], level: float, reps: int,
              threshold: float | None, seed: int = 0) -> dict:
    """The report.json structure."""
    out: dict = {}
    for env_id, labels in groups.items():
        out[env_id] = {}
        finals = {label: g.final_eval for label, g in labels.items() if g.final_eval is not None}
        aucs = {label: g.values.mean(axis=1) for label, g in labels.items()}
        improvements = _improvements({k: h.final for k, h in labels.items()}, level, reps, seed)
        auc_improvements = _improvements(aucs, level, reps, seed)
        final_improvements = _improvements(finals, level, reps, seed)
        for label, g in labels.items():
            entry = {
                "seeds": len(g.seeds),
                "final_step": int(g.grid[-1]),
                "final": {"median": float(g.median[-1]),
                          "median_ci": [float(g.median_low[-1]), float(g.median_high[-1])],
                          "iqm": float(g.iqm[-1]),
                          "iqm_ci": [float(g.iqm_low[-1]), float(g.iqm_high[-1])],
                          "mean": float(g.final.mean()),
                          # each seed's own value, so studies made apart can be pooled
                          "per_seed": _per_seed(g.seeds, g.final)},
                "prob_improvement": improvements[label],
                "steps_to_threshold": (None if threshold is None
                                       else stats.steps_to_threshold(g.grid, g.median,
                                                                     threshold)),
            }
            # the best-so-far curve's mean over the evaluation points: learning early counts
            entry["auc"] = {**_distribution(g.seeds, aucs[label], level, reps, seed),
                            "prob_improvement": auc_improvements[label]}
            if g.final_eval is not None:
                entry["final_eval"] = {
                    "episodes": g.final_eval_episodes,
                    **_distribution(g.seeds, g.final_eval, level, reps, seed),
                    "prob_improvement": final_improvements[label]}
            if g.wall_times:
                entry["wall_time_s"] = {"runs": len(g.wall_times),
                                        "median": float(np.median(g.wall_times)),
                                        "total": float(np.sum(g.wall_times))}
            if g.versions:
                entry["versions"] = g.versions
            out[env_id][label] = entry
    return out


def _distribution(seeds: list[int], values: np.ndarray, level: float, reps: int,
                  seed: int) -> dict:
    """Median and IQM over seeds with their CIs, the mean, and each seed's value."""
    median, m_low, m_high = stats.median_ci(values[:, None], level, reps, seed)
    iqm, i_low, i_high = stats.iqm_ci(values[:, None], level, reps, seed)
    return {"median": float(median[0]), "median_ci": [float(m_low[0]), float(m_high[0])],
            "iqm": float(iqm[0]), "iqm_ci": [float(i_low[0]), float(i_high[0])],
            "mean": float(values.mean()), "per_seed": _per_seed(seeds, values)}


def _distinct(items: Iterable[dict]) -> list[dict]:
    """Each distinct dict once, in order of first appearance (dicts cannot go in a set)."""
    out: list[dict] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _per_seed(seeds: list[int], values: np.ndarray) -> dict[str, float]:
    return {str(seed): float(v) for seed, v in zip(seeds, values, strict=True)}


def _improvements(values: dict[str, np.ndarray], level: float, reps: int, seed: int
                  ) -> dict[str, dict[str, dict]]:
    """P(improvement) of every label against every other, with its CI: ``[a][b]`` for a over b.

    Each pair is bootstrapped once: with ties counted half, P(b > a) = 1 - P(a > b) on every
    resample, so the reverse direction is the mirror image (its CI too).
    """
    pairs: dict[str, dict[str, dict]] = {label: {} for label in values}
    for a, b in itertools.combinations(values, 2):
        value, low, high = stats.probability_of_improvement(values[a], values[b], level, reps,
                                                            seed)
        pairs[a][b] = {"value": value, "ci": [low, high]}
        pairs[b][a] = {"value": 1.0 - value, "ci": [1.0 - high, 1.0 - low]}
    return pairs


def write_csv(groups: dict[str, dict[str, Group]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env", "label", "step", "median", "ci_low", "ci_high", "iqm",
                         "iqm_low", "iqm_high"])
        for env_id, labels in groups.items():
            for label, g in labels.items():
                for i, step in enumerate(g.grid):
                    writer.writerow([env_id, label, int(step), *(
                        f"{float(a[i]):.4f}" for a in (g.median, g.median_low, g.median_high,
                                                       g.iqm, g.iqm_low, g.iqm_high))])


def plot(env_id: str, labels: dict[str, Group], level: float, path: Path,
         threshold: float | None, reference: tuple[str, float] | None = None,
         evaluations: bool = False) -> None:
    """:func:`figure` written to ``path``."""
    fig = figure(env_id, labels, level, threshold, reference, evaluations)
    fig.savefig(path, dpi=120)
    fig.clear()


def figure(env_id: str, labels: dict[str, Group], level: float, threshold: float | None,
           reference: tuple[str, float] | None = None, evaluations: bool = False) -> Figure:
    """The median best-so-far curves with their CIs, or (``evaluations``) the median of the
    evaluations themselves, where a run that loses a good policy shows."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figures

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, g in labels.items():
        median, low, high = ((g.eval_median, g.eval_low, g.eval_high) if evaluations
                             else (g.median, g.median_low, g.median_high))
        # few evaluations: each one marked (a single one is a point, not a line)
        line, = ax.plot(g.grid, median, lw=2, marker="o" if len(g.grid) <= 20 else None,
                        label=f"{label} ({len(g.seeds)} seeds)")
        if len(g.grid) > 1:
            ax.fill_between(g.grid, low, high, color=line.get_color(), alpha=0.2)
        else:
            ax.errorbar(g.grid, median, yerr=[median - low, high - median], ls="none",
                        color=line.get_color(), capsize=5)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    if reference is not None:
        name, value = reference
        ax.axhline(value, color="black", ls=":", lw=1.5, label=f"{name} ({value:g})")
    what = "evaluation return" if evaluations else "best-so-far evaluation return"
    ax.set(xlabel="environment steps",
           ylabel=f"return: median over seeds, {level:.0%} bootstrap CI", title=f"{env_id}: {what}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def probability_text(p: dict | None) -> str:
    """A report.json probability of improvement as markdown shows it: value [low, high]."""
    return "-" if p is None else f"{p['value']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]"


def interval_text(value: float, ci: list[float]) -> str:
    """A return and its CI as markdown shows them: value [low, high]."""
    return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"


DEFAULT_BASELINES = ("momentum", "adam")


def _bases(labels: Collection[str], baselines: Sequence[str] | None) -> list[str]:
    """The baselines of a group's P(improvement) columns: those asked for (by default
    momentum and Adam) that it has, else its first label."""
    present = [b for b in (baselines or DEFAULT_BASELINES) if b in labels]
    return present or [next(iter(labels))]


def _versus(bases: list[str]) -> tuple[str, str]:
    """The P(improvement) columns' headers and their markdown rule."""
    return ("".join(f" P(improvement) vs {b} |" for b in bases), "---|" * len(bases))


def _probabilities(prob_improvement: dict, bases: list[str]) -> str:
    return "".join(f" {probability_text(prob_improvement.get(b))} |" for b in bases)


def markdown(summary: dict, baselines: Sequence[str] | None, level: float,
             preface: Sequence[str] = ()) -> str:
    lines = ["# Report", "",
             f"Best-so-far mean evaluation return at each group's final common step; "
             f"[{level:.0%} bootstrap CI]. P(improvement) vs X: probability that a run of the "
             "row beats a run of X (rliable). AUC: the best-so-far curve's mean over the "
             "evaluation points (learning early counts).", "", *preface]
    for env_id, labels in summary.items():
        bases = _bases(labels, baselines)
        headers, rule = _versus(bases)
        lines += [f"## {env_id}", "",
                  f"| label | seeds | final step | final median | IQM | mean |{headers} "
                  f"AUC median | steps to threshold |", f"|---|---|---|---|---|---|{rule}---|---|"]
        for label, r in labels.items():
            final = r["final"]
            steps = r["steps_to_threshold"]
            lines.append(f"| {label} | {r['seeds']} | {r['final_step']} | "
                         f"{interval_text(final['median'], final['median_ci'])} | "
                         f"{interval_text(final['iqm'], final['iqm_ci'])} | {final['mean']:.1f} |"
                         f"{_probabilities(r['prob_improvement'], bases)} "
                         f"{interval_text(r['auc']['median'], r['auc']['median_ci'])} | "
                         f"{'-' if steps is None else steps} |")
        lines += ["", f"![{env_id}]({env_id}.png)", "",
                  "Each evaluation's own mean return (not the best so far), median over seeds:",
                  "", f"![{env_id}, evaluations]({env_id}-evaluations.png)", ""]
        evaluated = {label: r["final_eval"] for label, r in labels.items() if "final_eval" in r}
        if evaluated:
            lines += _final_table(evaluated, bases)
        lines += _compute_lines(labels)
    return "\n".join(lines)


def _compute_lines(labels: dict[str, dict]) -> list[str]:
    """What the runs cost (run.json's wall time, resumptions included) and what they ran on."""
    timed = {label: r["wall_time_s"] for label, r in labels.items() if "wall_time_s" in r}
    lines = []
    if timed:
        lines += ["| label | runs timed | wall time per run (median) | total |",
                  "|---|---|---|---|"]
        lines += [f"| {label} | {t['runs']} | {t['median'] / 60:.1f} min | "
                  f"{t['total'] / 3600:.2f} h |" for label, t in timed.items()]
        lines.append("")
    for versions in _distinct(v for r in labels.values() for v in r.get("versions", [])):
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return lines


def _final_table(evaluated: dict[str, dict], bases: list[str]) -> list[str]:
    """The final models' table: each run's last model on many deterministic episodes."""
    headers, rule = _versus(bases)
    lines = ["Final model: each run's last model, mean return over its deterministic "
             "episodes (`final_evaluation.json`); median over seeds [CI].", "",
             f"| label | episodes per run | final median | IQM | mean |{headers}",
             f"|---|---|---|---|---|{rule}"]
    for label, f in evaluated.items():
        lines.append(f"| {label} | {f['episodes']} | "
                     f"{interval_text(f['median'], f['median_ci'])} | "
                     f"{interval_text(f['iqm'], f['iqm_ci'])} | {f['mean']:.1f} |"
                     f"{_probabilities(f['prob_improvement'], bases)}")
    return [*lines, ""]


def _with_references(runs: list[Run], references: References
                     ) -> tuple[list[Run], list[str], list[str]]:
    """The user's runs and the references' (labelled ``<set>:<label>``), the preface report.md
    says of the references, and the references' unreadable files."""
    differing = check([r.folder for r in runs if r.folder is not None], references)
    theirs, problems = find_runs(references.folder)
    commits = sorted({str((r.versions or {}).get("commit")) for r in theirs})
    preface = [f"References: `{references.name}:*`, {len(theirs)} runs from {references.study}"
               f" (`{references.command}`, code {', '.join(commits)}); the same task, budget "
               "and evaluation as the runs here.", ""]
    if differing:
        preface += ["Settings where runs here differ from the references: "
                    + "; ".join(differing) + ".", ""]
    runs = runs + [replace(r, label=references.label(r.label)) for r in theirs]
    return runs, preface, problems


def report(runs_dir: Path, out: Path | None = None, level: float = 0.95, reps: int = 2000,
           threshold: float | None = None, baselines: Sequence[str] | None = None,
           reference: tuple[str, float] | None = None, seeds: Collection[int] | None = None,
           references: References | None = None) -> tuple[Path, list[str]]:
    """Write the report files; return their folder and the warnings. ``reference``: a named
    return drawn on the figures (a fine-tuning run's start, for instance). ``seeds``: only
    these (the complete pairs of a study still running, for instance). ``baselines``: the
    labels report.md compares every label with (report.json has every pair). ``references``:
    committed runs set beside these (RunError where they answer another question); the
    baseline is then the references' own unless ``baselines`` names one."""
    if not runs_dir.is_dir():
        raise RunError(f"runs directory {runs_dir} does not exist")
    runs, problems = find_runs(runs_dir)
    if seeds is not None:
        runs = [r for r in runs if r.seed in seeds]
    if not runs:
        detail = f" ({len(problems)} unreadable)" if problems else ""
        which = "" if seeds is None else f" of seeds {sorted(seeds)}"
        raise RunError(f"no <env>/<label>/seed-<n>/{EVALUATIONS}{which} under {runs_dir}"
                       f"{detail}")
    preface: list[str] = []
    if references is not None:
        runs, preface, reference_problems = _with_references(runs, references)
        problems += reference_problems
        baselines = baselines or [references.label(references.baseline)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate resamples of equal seeds
        groups, group_problems = aggregate(runs, level, reps)
        summary = summarize(groups, level, reps, threshold)
    found = {label for labels in groups.values() for label in labels}
    unknown = [b for b in baselines or () if b not in found]
    if unknown:
        raise RunError(f"--baseline {', '.join(unknown)}: no such label under {runs_dir} (its "
                       f"labels: {', '.join(sorted(found))})")
    out = out or runs_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for env_id, labels in groups.items():
        plot(env_id, labels, level, out / f"{env_id}.png", threshold, reference)
        plot(env_id, labels, level, out / f"{env_id}-evaluations.png", threshold, reference,
             evaluations=True)
    write_csv(groups, out / "curves.csv")
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    missing = [f"{env_id}: no label {b} to compare with" for env_id, labels in summary.items()
               for b in baselines or () if b not in labels]
    (out / "report.md").write_text(markdown(summary, baselines, level, preface))
    return out, problems + group_problems + missing
