"""What the command line shows a person: a sweep's progress line, tune's table of trials,
inspect's table of preconditioners, an evaluation's lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fop_rl.progress import duration


def terrain_text(result: dict) -> str:
    """`` on terrain NAME`` for the terrain walker's episodes (a preset's name or custom-<hash>)."""
    from fop_rl import terrain as terrains

    if result["env_id"] != terrains.ENV_ID:
        return ""
    return f" on terrain {terrains.resolve(result['terrain']).name}"


def print_note(result: dict) -> None:
    """Why the model used is not the one asked for, if it is not."""
    if result["note"]:
        print(f"note: {result['note']}", file=sys.stderr)


def plural(n: int, word: str) -> str:
    """``1 episode``, ``4 episodes``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def evaluation_lines(result: dict, source: object) -> list[str]:
    """``fop-rl evaluate``'s text: the mean with its CI, what ran on which seeds, how the
    episodes ended and where the walker fell, then each episode."""
    low, high = result["ci"]
    seeds = (f"reset seeds {result['seeds'][0]}-{result['seeds'][1]}" if "seeds" in result
             else f"pool seed {result['pool_seed']}")
    level = round(100 * result["ci_level"])
    lines = [f"{result['model']} model of {source}: mean return {result['mean']:.1f} "
             f"[{low:.1f}, {high:.1f}] ({level}% bootstrap CI), median {result['median']:.1f}, "
             f"std {result['std']:.1f} over {plural(result['episodes'], 'episode')} of "
             f"{result['env_id']}{terrain_text(result)} ({result['backend']}, {seeds})"]
    if "ends" in result:
        lines.append("  ended: " + ", ".join(f"{e} {n}" for e, n in result["ends"].items()))
    if result.get("falls_at"):
        lines.append("  falls at: " + ", ".join(f"{k} {n}" for k, n in
                                                result["falls_at"].items())
                     + f" (mean share of the course reached {result['fall_course']:.0%})")
    for i, record in enumerate(result.get("per_episode") or ()):
        where = (f", at x {record['x']:.1f} ({record['course']:.0%} of the course)"
                 if "x" in record else "")
        on = f", {record['at']}" if "at" in record else ""
        lines.append(f"  episode {i} (seed {record['seed']}): return {record['return']:.1f}, "
                     f"{record['length']} steps, {record['end']}{where}{on}")
    if "per_episode" not in result:
        lines += [f"  episode {i}: return {r:.2f}, {n} steps"
                  for i, (r, n) in enumerate(zip(result["returns"], result["lengths"],
                                                 strict=True))]
    return lines


def completed_run_line(run_dir: Path) -> str:
    """A finished run in one line: the last model's final evaluation (mean, CI), the best
    evaluation during training and at which step, and the training time."""
    from fop_rl import rundir

    parts = [f"run complete: {run_dir}"]
    final = run_dir / rundir.FINAL_EVALUATION
    if final.exists():
        result = json.loads(final.read_text())
        low, high = result["ci"]
        parts.append(f"last model {result['mean']:.1f} [{low:.1f}, {high:.1f}] over "
                     f"{plural(result['episodes'], 'episode')}")
    timesteps, means = rundir.read_evaluations(run_dir)
    if len(means):
        best = int(means.argmax())
        parts.append(f"best evaluation {means[best]:.1f} at step {int(timesteps[best])}")
    wall = (rundir.read_status(run_dir) or {}).get("wall_time_s")
    if wall is not None:
        parts.append(f"trained in {duration(wall)}")
    return ", ".join(parts)


def sweep_line(p: dict[str, float]) -> str:
    """A sweep's progress (sweep.progress's counts) on one line."""
    # steps all done while runs still go: their final evaluations and saves
    eta = "finishing" if p["eta_s"] == 0 and p["running"] else duration(p["eta_s"])
    return (f"done {p['done'] + p['skipped']:.0f} / running {p['running']:.0f} / failed "
            f"{p['failed']:.0f} / pending {p['pending']:.0f} | {p['steps_per_s']:.0f} env "
            f"steps/s | ETA {eta}")


def print_trials(title: str, rows: list[dict]) -> None:
    """tune's best trials as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in (rows[0] if rows else {"number": None, "objective": None}):
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)


def print_preconditioners(diagnostics: list) -> None:
    """inspect's table: P's size, extreme eigenvalues, condition and rotation per layer."""
    print(f"{'layer':40s} {'structure':9s} {'||P||_F':>9s} {'eig min':>9s} {'eig max':>9s} "
          f"{'cond':>9s} {'angle':>6s}")
    for d in diagnostics:
        cond = d.eig_max / d.eig_min if d.eig_min > 0 else float("inf")
        print(f"{d.name:40s} {d.structure:9s} {d.frobenius_norm:9.3f} {d.eig_min:9.3g} "
              f"{d.eig_max:9.3g} {cond:9.3g} {d.angle_deg:5.1f}d")
