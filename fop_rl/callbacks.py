"""SB3 callbacks of a training run: FOP diagnostics, periodic checkpoints, evaluations written
atomically, progress and status, a curriculum's stages."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Figure
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from fop_rl import curriculum, rundir
from fop_rl.bar import progress_bar
from fop_rl.checkpoints import save_checkpoint
from fop_rl.curriculum import Stage, State
from fop_rl.modes import evaluated_weights
from fop_rl.optim import FOP, panels
from fop_rl.progress import duration
from fop_rl.terrain import Terrain

_NOT_TEXT = ("stdout", "log", "json", "csv")


class FOPDiagnostics(BaseCallback):
    """Logs what FOP learned, per preconditioned layer, at every rollout.

    Scalars ``fop/<param>/{p_norm,eig_min,eig_max,angle_deg,nonfinite_skips}`` at every
    rollout; every ``image_every`` rollouts (the first included), a histogram of P's entries
    ``fop_p/<param>`` and P as heatmaps (``fop/P``, paper figure 5a): the histograms cost about
    a tenth of FOP's update on the walker, the scalars a sixtieth. Does nothing when the
    optimizer is not FOP.
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
        if self.rollouts % self.image_every == 0:
            from fop_rl.plots import preconditioner_heatmaps

            for d in panels(diagnostics):
                self.logger.record(f"fop_p/{d.name}", d.matrix.flatten(), exclude=_NOT_TEXT)
            figure = preconditioner_heatmaps(diagnostics)
            self.logger.record("fop/P", Figure(figure, close=True), exclude=_NOT_TEXT)
        self.rollouts += 1

    def _on_step(self) -> bool:
        return True


class ResetPreconditioners(BaseCallback):
    """FOP learned afresh at each PPO update: :meth:`FOP.reset_preconditioners` when a rollout
    ends, after the diagnostics have logged what the last update learned."""

    def _on_rollout_end(self) -> None:
        self.model.policy.optimizer.reset_preconditioners()

    def _on_step(self) -> bool:
        return True


class PeriodicCheckpoint(BaseCallback):
    """Calls :func:`save_checkpoint` every ``every`` environment steps, keeping the ``keep``
    newest (0: all)."""

    def __init__(self, run_dir: Path, every: int, keep: int = 2):
        super().__init__()
        self.run_dir, self.every, self.keep = run_dir, every, keep

    def _on_training_start(self) -> None:
        self.next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next:
            save_checkpoint(self.model, self.run_dir, self.keep)
            self.next += self.every
        return True


class TimedEvalCallback(EvalCallback):
    """SB3's EvalCallback that adds up the seconds its evaluations take and writes the run's
    files atomically: SB3 writes them into hidden folders of the run (``.evaluations/``,
    ``.best/``), from which each is renamed into place whole: evaluations.npz, best_model.zip
    and the best_vecnormalize.pkl that goes with it."""

    def __init__(self, eval_env, run_dir: Path, **kwargs):
        super().__init__(eval_env, best_model_save_path=str(run_dir / ".best"),
                         log_path=str(run_dir / ".evaluations"), **kwargs)
        self.run_dir = run_dir
        self.seconds = 0.0

    def restore(self, evaluations: dict[str, np.ndarray] | None) -> None:
        """Continue a checkpoint's record of evaluations (a resumed run), rewritten in place."""
        if evaluations is None:
            return
        self.evaluations_timesteps = evaluations["timesteps"].tolist()
        self.evaluations_results = [list(r) for r in evaluations["results"]]
        self.evaluations_length = [list(r) for r in evaluations["ep_lengths"]]
        if self.evaluations_results:
            self.best_mean_reward = float(max(np.mean(r) for r in self.evaluations_results))
        with rundir.atomic_path(self.run_dir / rundir.EVALUATIONS) as tmp:
            np.savez(tmp, **evaluations)

    def _on_step(self) -> bool:
        start = time.monotonic()
        evaluated, best = len(self.evaluations_timesteps), self.best_mean_reward
        due = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0  # as SB3 decides
        with evaluated_weights(self.model) if due else contextlib.nullcontext():
            continue_training = super()._on_step()  # evaluates, and saves a new best model
        self.seconds += time.monotonic() - start
        if len(self.evaluations_timesteps) > evaluated:
            os.replace(f"{self.log_path}.npz", self.run_dir / rundir.EVALUATIONS)
        if self.best_mean_reward > best:
            hidden = Path(self.best_model_save_path)
            self.model.get_vec_normalize_env().save(str(hidden / rundir.BEST_VECNORM))
            for name in (rundir.BEST_MODEL, rundir.BEST_VECNORM):
                os.replace(hidden / name, self.run_dir / name)
        return continue_training


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
        self.last_line = (self.start_time, self.num_timesteps)
        status = rundir.read_status(self.run_dir) or {}
        self.previous_wall = status.get("wall_time_s", 0.0)
        self.previous_eval = status.get("eval_time_s", 0.0)
        self.evaluations_seen = len(self.evaluation.evaluations_timesteps)
        self.bar = None
        if self.show_bar:
            self.bar = progress_bar()
            self.bar.console.print(f"[bold]{self.label}[/bold]")
            self.task = self.bar.add_task(self.label, total=self.total,
                                          completed=self.num_timesteps, speed="",
                                          reward="-")
            self.bar.start()

    def line(self) -> str:
        """The progress line of a run without a terminal (a log): where it is, how fast it
        goes now (since the last line), how long it has taken and how long it will."""
        now, steps = time.monotonic(), self.num_timesteps
        rate = (steps - self.last_line[1]) / max(now - self.last_line[0], 1e-9)
        # the first line's rate holds the start (environments, compiling, loading): no ETA yet
        settled = self.last_line[0] > self.start_time
        self.last_line = (now, steps)
        eta = (self.total - steps) / rate if rate > 0 and settled else float("nan")
        return (f"{steps}/{self.total} steps, {rate:.0f} steps/s now, elapsed "
                f"{duration(self.previous_wall + now - self.start_time)}, ETA {duration(eta)}, "
                f"eval mean return {self.evaluation.last_mean_reward:.1f}")

    def speed(self) -> float:
        elapsed = time.monotonic() - self.start_time
        return (self.num_timesteps - self.start_steps) / elapsed if elapsed > 0 else 0.0

    def _on_step(self) -> bool:
        new_eval = len(self.evaluation.evaluations_timesteps) > self.evaluations_seen
        if new_eval:
            self.evaluations_seen = len(self.evaluation.evaluations_timesteps)
            if self.bar is None:
                print(self.line(), flush=True)
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


class Curriculum(BaseCallback):
    """Advances the training environments through ``stages`` by their rules.

    ``evaluation`` is the run's EvalCallback (on the final terrain), which must come before
    this callback in the list; ``make_eval_env(terrain)`` builds the environments that
    evaluate a stage's terrain when it is not the final one; ``record(state)`` keeps the state
    on disk (at the start, after each stage evaluation and at each new stage).
    """

    def __init__(self, stages: curriculum.Curriculum, state: State, evaluation: EvalCallback,
                 make_eval_env: Callable[[Terrain], VecEnv], record: Callable[[State], None]):
        super().__init__()
        self.stages, self.state, self.record = stages, state, record
        self.evaluation, self.make_eval_env = evaluation, make_eval_env
        self.stage_env: VecEnv | None = None

    @property
    def stage(self) -> Stage:
        return self.stages.stages[self.state.stage]

    def _on_training_start(self) -> None:
        # the evaluation callback's grid: it counts its calls, one per step of all envs
        self.every = self.evaluation.eval_freq * self.training_env.num_envs
        self.next_eval = (self.num_timesteps // self.every + 1) * self.every
        self._record()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.every
            mean = self._evaluate_stage()
            if self.stage.min_return is not None and mean >= self.stage.min_return:
                self._advance(f"evaluation return {mean:.1f} >= {self.stage.min_return:g}")
        steps = self.stage.steps
        if steps is not None and self.num_timesteps - self.state.history[-1] >= steps:
            self._advance(f"{steps} steps")
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("curriculum/stage", self.state.stage)

    def _on_training_end(self) -> None:
        if self.stage_env is not None:
            self.stage_env.close()

    def _evaluate_stage(self) -> float:
        """The mean evaluation return on the current stage's terrain (the run's evaluation's
        when it is the final terrain)."""
        if self.stage.terrain == self.stages.final:
            return float(self.evaluation.last_mean_reward)
        if self.stage_env is None:
            self.stage_env = self.make_eval_env(self.stage.terrain)
        else:
            self.stage_env.env_method("set_terrain", self.stage.terrain)
        sync_envs_normalization(self.training_env, self.stage_env)
        with evaluated_weights(self.model):
            returns, _ = evaluate_policy(self.model, self.stage_env,
                                         n_eval_episodes=self.evaluation.n_eval_episodes,
                                         deterministic=True, return_episode_rewards=True)
        mean = float(np.mean(returns))
        self.logger.record("curriculum/stage_eval_return", mean)
        self.state.evaluations.append({"step": self.num_timesteps, "stage": self.state.stage,
                                       "mean_return": mean})
        self.record(self.state)
        return mean

    def _advance(self, why: str) -> None:
        self.state.stage += 1
        self.state.history.append(self.num_timesteps)
        self.training_env.env_method("set_terrain", self.stage.terrain)
        print(f"curriculum: stage {self.state.stage} ({self.stage.terrain.name}) from step "
              f"{self.num_timesteps} ({why})", file=sys.stderr, flush=True)
        self._record()

    def _record(self) -> None:
        self.record(self.state)
        self.logger.record("curriculum/stage", self.state.stage)
