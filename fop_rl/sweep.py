"""Multi-seed sweeps: every (optimizer, seed) is one ``fop-rl train`` process, run locally with at
most ``jobs`` at once, or as Ray tasks on a cluster.

A sweep is idempotent: complete runs are skipped, interrupted ones resume from their latest
checkpoint, so running the same command again after a crash or Ctrl-C finishes the work. One
failing run never stops the others.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fop_rl import config as configuration
from fop_rl import rundir
from fop_rl.config import ConfigError
from fop_rl.optimizers import folder_name
from fop_rl.text import first_line


@dataclass
class Job:
    """One run of the sweep and how to (re)start it."""

    optimizer: str
    seed: int
    run_dir: Path
    log: Path
    argv: list[str]  # arguments of ``fop-rl``
    total: int
    state: str = "pending"  # pending | skipped | running | done | failed
    returncode: int | None = None
    handle: object = field(default=None, repr=False)


def parse_seeds(spec: str) -> list[int]:
    """``0-9``, ``0,3,7`` or a mix (``0-2,5``) -> sorted distinct seeds."""
    seeds: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if sep else [int(part)]
        except ValueError:
            raise ConfigError(f"--seeds {spec!r}: expected numbers like 0-9 or 0,3,7") from None
        if sep and int(hi) < int(lo):
            raise ConfigError(f"--seeds {spec!r}: empty range {part}")
        seeds.update(values)
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds {spec!r}: seeds are whole numbers >= 0")
    return sorted(seeds)


def plan(config_path: Path | None, env_id: str | None, optimizers: Iterable[str],
         seeds: Iterable[int], runs_dir: Path, timesteps: int | None,
         overrides: list[str]) -> list[Job]:
    """Validate every run's config up front, then decide for each: skip, resume or train."""
    jobs = []
    for optimizer in optimizers:
        for seed in seeds:
            extra = [f"training.optimizer={optimizer}", f"training.seed={seed}"]
            if timesteps is not None:
                extra.append(f"training.total_timesteps={timesteps}")
            cfg = configuration.load(config_path, env_id, [*overrides, *extra])
            env = rundir.env_folder(cfg)
            run_dir = rundir.default_run_dir(env, optimizer, seed, runs_dir)
            log = runs_dir / "logs" / env / folder_name(optimizer) / f"seed-{seed}.log"
            rundir.check_not_training(run_dir)  # another sweep's, say: leave it alone
            status = (rundir.read_status(run_dir) or {}).get("status")
            if status == "complete":
                argv, state = [], "skipped"
            elif rundir.latest_checkpoint(run_dir) is not None:
                argv, state = ["train", "--run-dir", str(run_dir), "--resume"], "pending"
            else:  # new, or a run that died before its first checkpoint: start it afresh
                argv = ["train", "--run-dir", str(run_dir), "--force", "--optimizer", optimizer,
                        "--seed", str(seed)]
                if config_path is not None:
                    argv += ["--config", str(config_path)]
                if env_id is not None:
                    argv += ["--env", env_id]
                if timesteps is not None:
                    argv += ["--timesteps", str(timesteps)]
                for item in overrides:
                    argv += ["--set", item]
                state = "pending"
            jobs.append(Job(optimizer, seed, run_dir, log,
                            [*argv, "--no-progress"] if argv else [],
                            cfg["training"]["total_timesteps"], state=state))
    return jobs


def _command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "fop_rl.cli", *argv]


def _single_threaded_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class LocalBackend:
    """At most ``jobs`` runs at once, each a separate process."""

    def __init__(self, jobs: int):
        self.slots = jobs

    def start(self, job: Job) -> None:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "a") as log:
            job.handle = subprocess.Popen(_command(job.argv), stdout=log,
                                          stderr=subprocess.STDOUT, env=_single_threaded_env(),
                                          start_new_session=True)  # Ctrl-C reaches us only

    def poll(self, job: Job) -> int | None:
        return job.handle.poll()

    def stop(self, running: list[Job]) -> None:
        for job in running:
            job.handle.send_signal(signal.SIGTERM)  # the run checkpoints, then exits
        for job in running:
            job.handle.wait()


class RayBackend:
    """The same runs as Ray tasks of one CPU each, on an existing cluster or a local one."""

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'fop-rl[ray]'") from None
        self.ray = ray
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
        except Exception as e:  # Ray's ConnectionError, after its own retries
            where = f"at --address {address}" if address else "locally"
            raise ConfigError(f"--backend ray: cannot start or reach a Ray cluster {where} "
                              f"({first_line(e)}); check that `ray start --head` runs there, "
                              "that its port is reachable from here, and that both use the "
                              "same Ray version") from None
        self.slots = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self.task = ray.remote(num_cpus=1)(_run_in_task)

    def start(self, job: Job) -> None:
        job.handle = self.task.remote(job.argv, str(job.log))

    def poll(self, job: Job) -> int | None:
        ready, _ = self.ray.wait([job.handle], timeout=0)
        return self.ray.get(ready[0]) if ready else None

    def stop(self, running: list[Job]) -> None:
        for job in running:
            self.ray.cancel(job.handle)  # SIGINT to the task: the run checkpoints

    def shutdown(self) -> None:
        self.ray.shutdown()


def _run_in_task(argv: list[str], log: str) -> int:
    """A Ray task: run one ``fop-rl train`` with this node's Python, log on shared storage."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        proc = subprocess.Popen(_command(argv), stdout=out, stderr=subprocess.STDOUT,
                                env=_single_threaded_env())
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            return proc.wait()


def run(jobs: list[Job], backend, show: Callable[[list[Job]], None] | None = None,
        poll_s: float = 1.0) -> list[Job]:
    """Start jobs as slots free up until all have ended; returns the failed ones.

    Ctrl-C stops the running jobs cleanly (each saves a checkpoint) and re-raises.
    """
    pending = [j for j in jobs if j.state == "pending"]
    running: list[Job] = []
    try:
        while pending or running:
            while pending and len(running) < backend.slots:
                job = pending.pop(0)
                backend.start(job)
                job.state = "running"
                running.append(job)
            time.sleep(poll_s)
            for job in list(running):
                code = backend.poll(job)
                if code is not None:
                    job.returncode = code
                    job.state = "done" if code == 0 else "failed"
                    running.remove(job)
            if show:
                show(jobs)
    except KeyboardInterrupt:
        backend.stop(running)
        for job in running:
            job.state = "pending"
        raise
    return [j for j in jobs if j.state == "failed"]


def progress(jobs: list[Job]) -> dict[str, float]:
    """Counts, aggregate env steps/s of the running jobs, and ETA from the steps left.

    Reads run.json of the running jobs only: the others are whole (pending) or finished.
    """
    counts = {s: sum(j.state == s for j in jobs) for s in ("done", "running", "failed", "pending",
                                                            "skipped")}
    speed = steps_left = 0.0
    for job in jobs:
        if job.state == "pending":
            steps_left += job.total
        elif job.state == "running":
            try:
                status = rundir.read_status(job.run_dir) or {}
            except rundir.RunError:  # progress is a display: a run's damaged record is its own
                status = {}
            steps_left += max(job.total - status.get("timesteps_done", 0), 0)
            if status.get("status") == "running":
                speed += status.get("env_steps_per_s", 0.0)
    counts.update(steps_per_s=speed, eta_s=steps_left / speed if speed else float("nan"))
    return counts
