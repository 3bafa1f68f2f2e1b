"""SB3 callbacks of a training run: FOP diagnostics, atomic checkpoints, progress and status."""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import Figure
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl import rundir
from fop_rl.optim import FOP
from fop_rl.optim.fop import panels

_NOT_TEXT = ("stdout", "log", "json", "csv")


class FOPDiagnostics(BaseCallback):
    """Logs what FOP learned, per preconditioned layer, at every rollout.

    Scalars ``fop/<param>/{p_norm,eig_min,eig_max,angle_deg,nonfinite_skips}``, a histogram of
    P's entries ``fop_p/<param>`` and, every ``image_every`` rollouts, P as heatmaps
    (``fop/P``, paper figure 5a). Does nothing when the optimizer is not FOP.
    """

    def __init__(self, image_every: int = 50):
        super().__init__()
        self.image_every = image_every
        self.rollouts = 0

    def _on_training_start(self) -> None:
        self.names = {p: name for name, p in self.model.policy.named_parameters()}

    def _on_rollout_end(self) -> None:
        optimizer = self.model.policy.optimizer
        if not isinstance(optimizer, FOP):
            return
        diagnostics = optimizer.diagnostics(self.names)
        if not diagnostics:  # before the first update
            return
        for d in panels(diagnostics):
            self.logger.record(f"fop/{d.name}/p_norm", d.frobenius_norm)
            self.logger.record(f"fop/{d.name}/eig_min", d.eig_min)
            self.logger.record(f"fop/{d.name}/eig_max", d.eig_max)
            self.logger.record(f"fop/{d.name}/angle_deg", d.angle_deg)
            self.logger.record(f"fop/{d.name}/nonfinite_skips", d.nonfinite_skips)
            self.logger.record(f"fop_p/{d.name}", d.matrix.flatten(), exclude=_NOT_TEXT)
        if self.rollouts % self.image_every == 0:
            from fop_rl.plots import preconditioner_heatmaps

            figure = preconditioner_heatmaps(diagnostics)
            self.logger.record("fop/P", Figure(figure, close=True), exclude=_NOT_TEXT)
        self.rollouts += 1

    def _on_step(self) -> bool:
        return True


def save_checkpoint(model, run_dir: Path, keep: int = 2) -> Path:
    """Model (with optimizer state), VecNormalize, evaluations so far and a curriculum's state,
    written atomically.

    Everything goes into a hidden temporary folder that is renamed when complete; only then
    does ``checkpoints/latest`` (itself replaced atomically) name it. A crash at any point
    leaves the previous checkpoint intact and named.
    """
    folder = run_dir / rundir.CHECKPOINTS
    folder.mkdir(exist_ok=True)
    name = f"step-{model.num_timesteps}"
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / rundir.MODEL)
    model.get_vec_normalize_env().save(str(tmp / rundir.VECNORM))
    for record in (rundir.EVALUATIONS, rundir.CURRICULUM):
        if (run_dir / record).exists():
            shutil.copy2(run_dir / record, tmp / record)
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    rundir.atomic_write_text(folder / "latest", name + "\n")
    old = sorted((p for p in folder.glob("step-*") if p.is_dir()),
                 key=lambda p: int(p.name.removeprefix("step-")))
    for stale in old[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


class PeriodicCheckpoint(BaseCallback):
    """Calls :func:`save_checkpoint` every ``every`` environment steps."""

    def __init__(self, run_dir: Path, every: int):
        super().__init__()
        self.run_dir, self.every = run_dir, every

    def _on_training_start(self) -> None:
        self.next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next:
            save_checkpoint(self.model, self.run_dir)
            self.next += self.every
        return True


class SaveVecNormalizeOnBest(BaseCallback):
    """EvalCallback's callback_on_new_best: keep the statistics that go with best_model.zip."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        env = self.model.get_vec_normalize_env()
        assert isinstance(env, VecNormalize)
        env.save(str(self.path))
        return True


class TimedEvalCallback(EvalCallback):
    """SB3's EvalCallback that also adds up the seconds its evaluations take."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = 0.0

    def _on_step(self) -> bool:
        start = time.monotonic()
        try:
            return super()._on_step()
        finally:
            self.seconds += time.monotonic() - start


class RunMonitor(BaseCallback):
    """Progress for the user (a rich bar on a terminal, a line per evaluation otherwise) and
    run.json for everyone else: timesteps done, wall time (and the part spent evaluating),
    env steps per second."""

    def __init__(self, run_dir: Path, label: str, total_timesteps: int,
                 evaluation: TimedEvalCallback, show_bar: bool | None = None):
        super().__init__()
        self.run_dir, self.label = run_dir, label
        self.total, self.evaluation = total_timesteps, evaluation
        self.show_bar = sys.stderr.isatty() if show_bar is None else show_bar
        self.evaluations_seen = 0

    def _on_training_start(self) -> None:
        self.start_time, self.start_steps = time.monotonic(), self.num_timesteps
        status = rundir.read_status(self.run_dir) or {}
        self.previous_wall = status.get("wall_time_s", 0.0)
        self.previous_eval = status.get("eval_time_s", 0.0)
        self.evaluations_seen = len(self.evaluation.evaluations_timesteps)
        self.bar = None
        if self.show_bar:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[speed]}"),
                                TextColumn("eval {task.fields[reward]}"), TimeRemainingColumn())
            self.task = self.bar.add_task(self.label, total=self.total,
                                          completed=self.num_timesteps, speed="",
                                          reward="-")
            self.bar.start()

    def speed(self) -> float:
        elapsed = time.monotonic() - self.start_time
        return (self.num_timesteps - self.start_steps) / elapsed if elapsed > 0 else 0.0

    def _on_step(self) -> bool:
        new_eval = len(self.evaluation.evaluations_timesteps) > self.evaluations_seen
        if new_eval:
            self.evaluations_seen = len(self.evaluation.evaluations_timesteps)
            if self.bar is None:
                print(f"{self.num_timesteps}/{self.total} steps, {self.speed():.0f} steps/s, "
                      f"eval mean return {self.evaluation.last_mean_reward:.1f}", flush=True)
        if self.bar is not None and (new_eval or self.n_calls % 50 == 0):
            reward = self.evaluation.last_mean_reward
            self.bar.update(self.task, completed=self.num_timesteps,
                            speed=f"{self.speed():.0f} steps/s",
                            reward="-" if not np.isfinite(reward) else f"{reward:.1f}")
        return True

    def _on_rollout_end(self) -> None:
        self.write_status()

    def write_status(self, **fields) -> None:
        rundir.write_status(
            self.run_dir, timesteps_done=int(self.num_timesteps),
            wall_time_s=round(self.previous_wall + time.monotonic() - self.start_time, 1),
            eval_time_s=round(self.previous_eval + self.evaluation.seconds, 1),
            env_steps_per_s=round(self.speed(), 1), **fields)

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop the progress bar (also after an interruption, which skips training end)."""
        if getattr(self, "bar", None) is not None:
            self.bar.update(self.task, completed=self.num_timesteps)
            self.bar.stop()
            self.bar = None


class StopOnSignal(BaseCallback):
    """Ends training cleanly at the next environment step after Ctrl-C or SIGTERM.

    Raising from the signal handler could land anywhere (inside an import, a save); a flag
    checked between steps cannot. A second signal interrupts at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> StopOnSignal:
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def _on_step(self) -> bool:
        return not self.requested
