"""Hyperparameter search per optimizer with Optuna: TPE sampling, pruning, resumable studies.

A trial trains the optimizer with values sampled from the config's ``search`` section, one
``fop-rl train`` process per tuning seed, under ``<folder>/trial-<k>/seed-<n>/``, where
``<folder>`` is ``<runs-dir>/tune/<env>/<optimizer>/``. Its objective:

* ``final``: the mean over its seeds of the best-so-far evaluation return at the budget;
* ``auc``: the mean over its seeds of the best-so-far curve averaged over the evaluation points
  (it rewards learning fast: the paper's "trains faster").

After each evaluation that every seed has reached, the same quantity so far is reported to the
pruner, which may stop the trial (its runs save a checkpoint and exit). The study lives in an
Optuna storage: by default a journal file in ``<folder>`` (safe for several processes on one
machine), or any Optuna storage URL (``--storage``), which lets machines share one study.

Re-running the same command continues the study until ``trials`` trials have finished
(complete or pruned). A trial whose runs fail, or whose evaluations are not finite, ends as
FAIL with its reason in the user attribute ``fail_reason``; so does a trial left RUNNING by a
tune process that died (detected on this machine by its process id, and on any machine, in a
database, by its heartbeat), and the trials that a Ctrl-C stops. Failed trials do not count.
Several tune processes may share a study, started at once: the trials they run and finish
together stop at ``trials``.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fop_rl import rundir, stats
from fop_rl.config import ConfigError, plain
from fop_rl.optimizers import folder_name
from fop_rl.sweep import Job, LocalBackend
from fop_rl.text import first_line

FINISHED = ("COMPLETE", "PRUNED")


def study_folder(runs_dir: Path, env: str, optimizer: str) -> Path:
    """``<runs_dir>/tune/<env>/<optimizer>``; ``env`` is rundir.env_folder's, ``<optimizer>``
    the name's folder (an import path's ``:`` as ``.``)."""
    return runs_dir / "tune" / env / folder_name(optimizer)


HEARTBEAT_S = 60  # a database study's running trials beat this often (--heartbeat)
STALE_BEATS = 3  # a trial whose process missed this many beats is marked FAIL


def open_study(folder: Path, name: str, storage: str | None, pruner: str, timesteps: int,
               eval_freq: int, heartbeat_s: int = HEARTBEAT_S):
    """Create the study, or load it to continue; the pruner works on environment steps.

    A database URL gets Optuna's RDB storage with heartbeats: each running trial beats every
    ``heartbeat_s`` seconds, and one silent for ``STALE_BEATS`` beats (its process died, on any
    machine) is marked FAIL by the next tune process that opens the study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruners = {
        # rl-baselines3-zoo's: no pruning in the first third of a run, nor before 5 trials
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5,
                                                      n_warmup_steps=timesteps // 3),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=eval_freq,
                                                            max_resource=timesteps),
        "none": optuna.pruners.NopPruner,
    }
    where = "the journal file" if storage is None else _masked(storage)
    try:
        if storage is None:
            folder.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(folder / "study.journal"))
            opened = optuna.storages.JournalStorage(backend)
        else:
            opened = _database(storage, heartbeat_s)
        # the sampler is not seeded: a seeded one would repeat its first draws in a continued
        # study
        return optuna.create_study(storage=opened, study_name=name, direction="maximize",
                                   sampler=optuna.samplers.TPESampler(),
                                   pruner=pruners[pruner](), load_if_exists=True)
    except ImportError as e:  # the URL's driver (Optuna wraps SQLAlchemy's error)
        missing = e.__cause__ or e
        raise ConfigError(f"cannot open study {name!r} in {where}: its database driver is "
                          f"not installed ({missing}); for PostgreSQL: pip install "
                          "'fop-rl[postgres]'") from None
    except Exception as e:  # a bad URL, an unreachable database, a foreign file
        raise ConfigError(f"cannot open study {name!r} in {where}: {first_line(e)}") from None


def _database(url: str, heartbeat_s: int):
    """Optuna's RDB storage, made when other processes may be making it at the same moment:
    each creates the schema if missing, and all but one find it half made (a duplicate type
    or table, PostgreSQL's UniqueViolation). Made again after a pause, it is found whole."""
    import optuna
    import sqlalchemy.exc

    attempts = 10
    for attempt in itertools.count(1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s,
                                                  grace_period=STALE_BEATS * heartbeat_s)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.2, 1.0))


def _masked(url: str) -> str:
    """A database URL as it may be shown: without its password."""
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing to hide
        return url


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Values for one trial from a validated search space."""
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"])
        else:
            values[key] = trial.suggest_float(key, spec["low"], spec["high"],
                                              log=spec.get("log", False))
    return values


def objective_curve(curves: list[np.ndarray], objective: str) -> np.ndarray:
    """Per evaluation point, the trial's objective so far (seeds' curves cut to a common
    length): the mean best-so-far (final), or its running average over the points (auc)."""
    length = min(len(c) for c in curves)
    best = np.mean([stats.best_so_far(c[:length]) for c in curves], axis=0)
    if objective == "auc":
        return np.cumsum(best) / np.arange(1, length + 1)
    return best


@dataclass
class RunningTrial:
    trial: Any  # optuna.Trial
    jobs: list[Job]
    reported: int = 0  # evaluation points reported to the pruner
    curve: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beat: float = -np.inf  # time.monotonic() of its last heartbeat


class SharedStudy:
    """The study as every tune process sees it, on this machine or another: its counts, the
    trials a dead process left running, heartbeats for this process's running trials, and new
    trials that never take the study past the number asked for."""

    def __init__(self, study):
        self.study = study

    def finished(self) -> int:
        return sum(t.state.name in FINISHED for t in self.study.get_trials(deepcopy=False))

    def counts(self) -> tuple[int, int]:
        """(finished, running) trials of the whole study: other tune processes' included."""
        states = [t.state.name for t in self.study.get_trials(deepcopy=False)]
        return sum(s in FINISHED for s in states), states.count("RUNNING")

    def fail_orphans(self) -> list[int]:
        """Mark FAIL the trials left RUNNING by a tune process that died: one of this machine
        (its process id is gone), or, in a database study, one anywhere whose heartbeat
        stopped (see open_study)."""
        import optuna
        from optuna.storages._heartbeat import is_heartbeat_enabled

        storage = self.study._storage
        stale = set()
        if is_heartbeat_enabled(storage):
            stale = set(storage._get_stale_trial_ids(self.study._study_id))
        orphans = []
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            where = f"pid {t.user_attrs.get('pid')} on {t.user_attrs.get('host')}"
            if rundir.alive_here(t.user_attrs) is False:
                reason = f"its tune process ({where}) died"
            elif t._trial_id in stale:
                reason = (f"its tune process ({where}) stopped beating: no heartbeat for "
                          f"{STALE_BEATS} x {storage.get_heartbeat_interval()} s")
            else:
                continue
            try:
                storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
                self.study.tell(t.number, state=optuna.trial.TrialState.FAIL,
                                skip_if_finished=True)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
                continue  # another tune process failed it first
            orphans.append(t.number)
        return orphans

    def beat(self, trials: list[RunningTrial]) -> None:
        """In a database study, a heartbeat for each of this process's running trials (this
        process lives) once per heartbeat interval."""
        from optuna.storages._heartbeat import is_heartbeat_enabled

        storage = self.study._storage
        if not is_heartbeat_enabled(storage):
            return
        now = time.monotonic()
        for running in trials:
            if now - running.beat >= storage.get_heartbeat_interval():
                storage.record_heartbeat(running.trial._trial_id)
                running.beat = now

    def ask(self, trials: int):
        """A new trial (optuna.Trial) marked as this process's, or None when the study turns
        out to have enough trials finished or running (another tune process asked at the same
        moment): then the new trial ends as FAIL, "surplus", before it trains."""
        import optuna

        with warnings.catch_warnings():  # "heartbeats are meant for Study.optimize": we beat
            warnings.simplefilter("ignore", UserWarning)
            trial = self.study.ask()
        ahead = sum(t.number < trial.number and t.state.name in (*FINISHED, "RUNNING")
                    for t in self.study.get_trials(deepcopy=False))
        if ahead >= trials:
            trial.set_user_attr("fail_reason", f"surplus: {ahead} trials were already "
                                "finished or running")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return None
        for key, value in rundir.process().items():  # host, boot_id, pid: see fail_orphans
            trial.set_user_attr(key, value)
        return trial


class Tuner:
    """Runs a study's trials in this process: starts each trial's runs as process slots free
    up, feeds the pruner their evaluations, and records each trial's end; the study itself,
    shared with other tune processes, is its :class:`SharedStudy`. ``train_argv(seed,
    run_dir, params)`` gives a run's arguments."""

    def __init__(self, study, folder: Path, space: dict, seeds: list[int], objective: str,
                 jobs: int, train_argv: Callable[[int, Path, dict], list[str]]):
        self.study, self.shared = study, SharedStudy(study)
        self.folder, self.space, self.seeds = folder, space, seeds
        self.objective, self.train_argv = objective, train_argv
        self.backend = LocalBackend(jobs)
        self.running: list[RunningTrial] = []

    def start(self, trials: int) -> bool:
        """Start a trial and its runs; False when the study has enough (SharedStudy.ask)."""
        trial = self.shared.ask(trials)
        if trial is None:
            return False
        params = suggest(trial, self.space)
        jobs = []
        for seed in self.seeds:
            run_dir = self.folder / f"trial-{trial.number}" / f"seed-{seed}"
            log = self.folder / "logs" / f"trial-{trial.number}-seed-{seed}.log"
            job = Job("", seed, run_dir, log, self.train_argv(seed, run_dir, params), 0)
            self.backend.start(job)
            jobs.append(job)
        self.running.append(RunningTrial(trial, jobs))
        return True

    def run(self, trials: int, on_end: Callable[[Any, str, str], None] | None = None,
            poll_s: float = 1.0) -> bool:
        """Run trials until ``trials`` have finished, or as many have failed in this call (a
        search space where everything diverges): True if they finished. Ctrl-C stops the
        running trials (FAIL, reason "interrupted") and re-raises."""
        per_trial, failures = len(self.seeds), 0
        try:
            while True:
                self.shared.fail_orphans()  # another process's: it would hold a slot forever
                finished, running = self.shared.counts()  # other processes' included
                if not self.running and (finished >= trials or failures >= trials):
                    break
                while (finished + running < trials and failures < trials
                       and (len(self.running) + 1) * per_trial <= max(self.backend.slots,
                                                                      per_trial)):
                    if not self.start(trials):
                        break
                    running += 1
                self.shared.beat(self.running)
                time.sleep(poll_s)
                for running in list(self.running):
                    outcome = self.poll(running)
                    if outcome is not None:
                        self.running.remove(running)
                        failures += outcome[0] == "FAIL"
                        if on_end:
                            on_end(running.trial, *outcome)
        except KeyboardInterrupt:
            for running in self.running:
                self.end(running, "FAIL", "interrupted")
            raise
        return finished >= trials

    def poll(self, running: RunningTrial) -> tuple[str, str] | None:
        """Report new evaluation points, prune or finish: (state, detail) when it ended."""
        codes = [self.backend.poll(job) for job in running.jobs]
        failed = [job for job, code in zip(running.jobs, codes, strict=True)
                  if code not in (None, 0)]
        if failed:
            return self.end(running, "FAIL", _failure(failed[0]))
        evaluations = [rundir.read_evaluations(job.run_dir) for job in running.jobs]
        curves = [returns for _, returns in evaluations]
        if min(len(c) for c in curves):
            curve = objective_curve(curves, self.objective)
            if not np.all(np.isfinite(curve)):
                return self.end(running, "FAIL", "an evaluation return is not finite")
            steps = evaluations[0][0]
            for i in range(running.reported, len(curve)):
                running.trial.report(float(curve[i]), step=int(steps[i]))
            running.reported, running.curve = len(curve), curve
            if running.trial.should_prune():
                return self.end(running, "PRUNED", f"at {int(steps[len(curve) - 1])} steps")
        if all(code == 0 for code in codes):
            if not running.curve.size:
                return self.end(running, "FAIL", "the runs ended without an evaluation")
            return self.end(running, "COMPLETE", f"{float(running.curve[-1]):.2f}")
        return None

    def end(self, running: RunningTrial, state: str, detail: str) -> tuple[str, str]:
        import optuna

        alive = [job for job in running.jobs if self.backend.poll(job) is None]
        self.backend.stop(alive)  # SIGTERM: each run saves a checkpoint, then exits
        if state == "FAIL":
            running.trial.set_user_attr("fail_reason", detail)
        value = float(running.curve[-1]) if state == "COMPLETE" else None
        self.study.tell(running.trial, value,
                        state=getattr(optuna.trial.TrialState, state))
        return state, detail


def _failure(job: Job) -> str:
    """Why a run failed: its run.json error, else the last line of its log."""
    error = (rundir.read_status(job.run_dir) or {}).get("error")
    if error:
        return f"seed {job.seed}: {error}"
    try:
        lines = job.log.read_text().strip().splitlines()
    except OSError:
        lines = []
    return f"seed {job.seed}: exit {job.handle.returncode}" + (f": {lines[-1]}" if lines else "")


def best_config(base: dict[str, Any], optimizer: str, params: dict[str, Any]) -> dict[str, Any]:
    """The environment's config with the optimizer's best values filled in, ready to train."""
    config = copy.deepcopy(base)
    config["training"]["optimizer"] = optimizer
    config["optimizers"][optimizer] = {**config["optimizers"].get(optimizer, {}), **params}
    return config


def write_outputs(study, folder: Path, base: dict[str, Any], optimizer: str) -> list[Path]:
    """best.yaml (when a trial completed), trials.csv, history.png, importance.png."""
    written = [folder / "trials.csv"]
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["number", "state", *keys, "objective", "last_step", "fail_reason"])
    for t in trials:
        last = max(t.intermediate_values, default=None)
        writer.writerow([t.number, t.state.name, *(t.params.get(k, "") for k in keys),
                         "" if t.value is None else t.value, "" if last is None else last,
                         t.user_attrs.get("fail_reason", "")])
    # tune processes sharing a folder as well as a study write it at once: whole, or not
    rundir.atomic_write_text(folder / "trials.csv", table.getvalue())
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = max(complete, key=lambda t: t.value)
        config = best_config(base, optimizer, best.params)
        header = (f"# fop-rl tune: best of {len(complete)} complete trials of study "
                  f"{study.study_name!r}: trial {best.number}, objective {best.value:.2f}\n")
        rundir.atomic_write_text(folder / "best.yaml",
                                 header + yaml.safe_dump(plain(config), sort_keys=False))
        written.insert(0, folder / "best.yaml")
        written += _figures(study, folder)
    return written


def _figures(study, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    for name, draw in (("history.png", ovm.plot_optimization_history),
                       ("importance.png", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():  # "experimental", "too few trials": not news here
                warnings.simplefilter("ignore")
                ax = draw(study)
        except (ValueError, RuntimeError):  # importances need 2+ complete trials that vary
            continue
        ax.figure.tight_layout()
        ax.figure.savefig(folder / name, dpi=110)
        plt.close(ax.figure)
        written.append(folder / name)
    return written


def summary(study, top: int = 5) -> list[dict[str, Any]]:
    """The best complete trials, best first."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    complete.sort(key=lambda t: t.value, reverse=True)
    return [{"number": t.number, "objective": t.value, **t.params} for t in complete[:top]]

