"""A training run, top to bottom: config -> environments + PPO with its optimizer -> callbacks
-> run directory."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl import curriculum, rundir, runlog
from fop_rl.agents import LoadedRun, locate
from fop_rl.callbacks import (
    Curriculum,
    FOPDiagnostics,
    PeriodicCheckpoint,
    ResetPreconditioners,
    RunMonitor,
    StopOnSignal,
    TimedEvalCallback,
)
from fop_rl.checkpoints import Checkpoint, newest_loadable, save_checkpoint
from fop_rl.compiled import CompiledPPO
from fop_rl.config import plain
from fop_rl.envs import make_eval_env, make_train_env
from fop_rl.evaluate import evaluate, save_final
from fop_rl.modes import evaluated_weights, to_train_mode
from fop_rl.optimizers import RESET_EACH_UPDATE, described, policy_setup
from fop_rl.rundir import RunError
from fop_rl.saved import check_spaces, load_model, load_stats


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; a checkpoint was saved."""


def prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run unless asked: nothing on disk is lost by mistake."""
    rundir.check_not_training(run_dir)
    if resume:
        if not (run_dir / rundir.CONFIG).exists():
            raise RunError(f"{run_dir} holds no run to resume (no {rundir.CONFIG})")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            status = rundir.status_text(rundir.read_status(run_dir) or {})
            raise RunError(f"{run_dir} already holds a run (status: {status}); use --resume to "
                           "continue it or --force to start over")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def resume_point(run_dir: Path, config: dict[str, Any]) -> Checkpoint | None:
    """The newest checkpoint of the run that loads (None: none was made), saying which."""
    checkpoint, skipped = newest_loadable(run_dir, algorithm(config), set_aside=True)
    for line in skipped:
        print(f"note: {line}", file=sys.stderr)
    if checkpoint is None:
        print(f"note: {run_dir} stopped before its first checkpoint: training it from step 0 "
              f"with its {rundir.CONFIG}", file=sys.stderr)
        for name in (rundir.EVALUATIONS, rundir.BEST_MODEL, rundir.BEST_VECNORM):
            (run_dir / name).unlink(missing_ok=True)  # the attempt's, whose training is gone
    else:
        print(f"resuming {run_dir} from step {checkpoint.step} "
              f"({rundir.CHECKPOINTS}/{checkpoint.folder.name})", flush=True)
    return checkpoint


def schedule(value: float, kind: str) -> float | Callable[[float], float]:
    """A constant, or SB3's schedule decaying linearly from ``value`` to 0 over the run."""
    if kind == "linear":
        return lambda progress_remaining: progress_remaining * value
    return value


def learning_rate(config: dict[str, Any]) -> float | Callable[[float], float]:
    lr = config["optimizers"][config["training"]["optimizer"]]["lr"]
    return schedule(lr, config["training"]["lr_schedule"])


def algorithm(config: dict[str, Any]) -> type[PPO]:
    """SB3's PPO, or the same algorithm with its minibatch gradient compiled (``ppo.compile``)."""
    return CompiledPPO if config["ppo"]["compile"] else PPO


def build_model(config: dict[str, Any], env: VecNormalize) -> PPO:
    name = config["training"]["optimizer"]
    policy, optimizer = policy_setup(name, config["optimizers"][name])
    ppo = dict(config["ppo"])
    net_arch = ppo.pop("net_arch")
    ppo.pop("compile")
    ppo["clip_range"] = schedule(ppo["clip_range"], config["training"]["clip_schedule"])
    return algorithm(config)(
        policy, env, learning_rate=learning_rate(config), seed=config["training"]["seed"],
        policy_kwargs=dict(net_arch=dict(pi=net_arch, vf=net_arch), **optimizer),
        device="cpu", verbose=0, **ppo,
    )


def load_source(config: dict[str, Any]) -> tuple[LoadedRun, PPO, VecNormalize]:
    """The run that ``training.init_from`` names, its model and statistics, loaded and checked
    against ``config`` before anything is written: RunError if one is missing or unreadable,
    or it has other spaces or networks."""
    training = config["training"]
    source = Path(training["init_from"])
    try:  # every file of the source, loaded before anything is written
        run = locate(source, training["init_model"])
        model, stats = load_model(run.model_path), load_stats(run.stats_path)
    except RunError as e:
        raise RunError(f"--init-from: {e}") from None
    if run.note:
        print(f"note: {run.note}", file=sys.stderr)
    check_spaces(model, config["env"]["id"], f"--init-from {source}")
    if run.config["ppo"]["net_arch"] != config["ppo"]["net_arch"]:
        raise RunError(f"--init-from {source}: its networks ({run.config['ppo']['net_arch']}) "
                       f"differ from this config's ppo.net_arch ({config['ppo']['net_arch']})")
    theirs, mine = run.config["ppo"]["gamma"], config["ppo"]["gamma"]
    if theirs != mine:
        # the value head and the return statistics were learned for the source's discount
        print(f"note: --init-from {source} learned its values with ppo.gamma {theirs}; this run "
              f"uses {mine} (--set ppo.gamma={theirs} keeps them consistent)", file=sys.stderr)
    return run, model, stats


def start_from(model: PPO, env: VecNormalize, run: LoadedRun, source: PPO,
               stats: VecNormalize) -> dict[str, Any]:
    """Fine-tuning: ``model`` takes the policy and value weights of ``source``, and ``env`` the
    normalisation statistics saved with it (they keep updating); the optimizer stays fresh.
    Returns what run.json records about the source."""
    model.policy.load_state_dict(source.policy.state_dict())
    env.obs_rms, env.ret_rms = stats.obs_rms, stats.ret_rms
    return {"run_dir": str(run.model_path.parent), "model": run.which,
            "env_id": run.config["env"]["id"], "optimizer": run.config["training"]["optimizer"],
            "seed": run.config["training"]["seed"]}


def train(config: dict[str, Any], run_dir: Path, resume: bool = False, force: bool = False,
          show_progress: bool | None = None, timesteps: int | None = None) -> Path:
    """Train PPO as ``config`` says into ``run_dir`` (or continue it), and return run_dir.

    ``timesteps``, with ``resume``: the run's new total (a run extended, or shortened to no
    fewer steps than it has done), written to its config.yaml and recorded in the resume.

    Raises RunError before anything is written when the run directory, a checkpoint or the
    source run forbids it, and Interrupted after saving a checkpoint when stopped by Ctrl-C or
    SIGTERM. A run that cannot start leaves its directory as it was (a new one: none).
    """
    source = None
    if not resume and config["training"]["init_from"] is not None:
        source = load_source(config)
    prepare_run_dir(run_dir, resume, force)
    checkpoint, resume_step, previous, extended = None, None, None, {}
    if resume:
        config = rundir.read_config(run_dir)
        previous = rundir.read_status(run_dir) or {}
        total, done = config["training"]["total_timesteps"], previous.get("timesteps_done", 0)
        if timesteps is not None and timesteps != total:
            if timesteps < done:
                raise RunError(f"{run_dir} has done {done} steps: --timesteps must be at least "
                               f"that, got {timesteps}")
            extended = {"total_timesteps": {"from": total, "to": timesteps}}
            total = config["training"]["total_timesteps"] = timesteps
        if previous.get("status") == "complete" and done >= total:
            raise RunError(f"{run_dir} is complete ({total} steps): nothing to resume "
                           f"(--resume --timesteps N, N > {total}, extends it)")
        checkpoint = resume_point(run_dir, config)
        resume_step = 0 if checkpoint is None else checkpoint.step
    else:
        rundir.write_config(run_dir, config)
    env_cfg, training = config["env"], config["training"]
    seed, total = training["seed"], training["total_timesteps"]
    torch.set_num_threads(1)  # small networks: threads cost more than they give, and runs
    set_random_seed(seed)     # in parallel must not fight over cores
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    record = {"started": now}
    if resume:  # the first start stays; each resume is recorded
        record = {"started": previous.get("started", now), "resumes": [
            *previous.get("resumes", []),
            {"step": resume_step, "time": now,
             "checkpoint": None if checkpoint is None else checkpoint.folder.name, **extended}]}
    rundir.write_status(run_dir, status="running", env_id=env_cfg["id"],
                        terrain=plain(env_cfg)["terrain"], backend=env_cfg["backend"],
                        optimizer=training["optimizer"],
                        **described(training["optimizer"],
                                    config["optimizers"][training["optimizer"]]),
                        seed=seed, total_timesteps=total,
                        training_reward={k: env_cfg[k] for k in ("fall_penalty", "reward_scale")},
                        action_repeat=env_cfg["action_repeat"],
                        versions=rundir.versions(), **record, **rundir.process())
    try:
        (run_dir / "monitor").mkdir(exist_ok=True)
        # a curriculum trains on its current stage's terrain (the checkpoint's), and evaluates
        # on its last stage's, the run's env.terrain
        stages = training["curriculum"]
        train_env_cfg = env_cfg
        if stages:
            stage_state = curriculum.State(**((checkpoint and checkpoint.curriculum) or {}))
            train_env_cfg = {**env_cfg, "terrain": stages.stages[stage_state.stage].terrain}
        env = make_train_env(train_env_cfg, config["ppo"]["gamma"], seed, run_dir / "monitor",
                             append=resume)
        # evaluation episodes in environments stepped together: SB3's evaluate_policy gives
        # each its own episode target, so the average is not biased toward short episodes
        eval_env = make_eval_env(env_cfg, seed,
                                 n_envs=min(training["n_eval_envs"], training["n_eval_episodes"]))
        if checkpoint is not None:
            checkpoint.stats.set_venv(env.venv)
            env, model = checkpoint.stats, checkpoint.model
            model.set_env(env)
        else:
            model = build_model(config, env)
            if source is not None:
                rundir.write_status(run_dir, init_from=start_from(model, env, *source))
        to_train_mode(model)  # a checkpoint's optimizer was saved in eval mode
        model.set_logger(runlog.logger(run_dir / "tb", resume_step))
    except Exception:  # nothing trained yet: leave the directory as it was
        if resume:
            rundir.restore_status(run_dir, previous)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if extended:  # the run starts: its config says the new total
        rundir.write_config(run_dir, config)
        final = run_dir / rundir.FINAL_EVALUATION
        if final.exists():  # the shorter run's last model's: kept beside the new one's
            final.rename(run_dir / f"final_evaluation-{extended['total_timesteps']['from']}.json")

    evaluation = TimedEvalCallback(
        eval_env, run_dir, eval_freq=max(training["eval_freq"] // env_cfg["n_envs"], 1),
        n_eval_episodes=training["n_eval_episodes"], deterministic=True, verbose=0)
    # EvalCallback counts its own calls (one per env step of all envs): align a resumed run
    # with the evaluation grid of the uninterrupted one.
    evaluation.n_calls = model.num_timesteps // env_cfg["n_envs"]
    if resume:
        evaluation.restore(checkpoint and checkpoint.evaluations)
    label = f"{env_cfg['id']} {training['optimizer']} seed {seed}"
    monitor = RunMonitor(run_dir, label, total, evaluation, show_bar=show_progress)
    stop = StopOnSignal()
    evaluating = [evaluation]  # in this order: a curriculum reads the step's evaluation
    if stages:
        n_eval_envs = evaluation.eval_env.num_envs
        evaluating.append(Curriculum(
            stages, stage_state, evaluation,
            lambda terrain: make_eval_env({**env_cfg, "terrain": terrain}, seed,
                                          n_envs=n_eval_envs),
            lambda state: rundir.write_curriculum(run_dir, asdict(state))))
    callbacks = CallbackList([
        *evaluating, monitor, PeriodicCheckpoint(run_dir, training["checkpoint_freq"],
                                                   training["keep_checkpoints"]),
        FOPDiagnostics(training["diagnostics_image_every"]),
        *([ResetPreconditioners()] if training["optimizer"] in RESET_EACH_UPDATE else []), stop,
    ])
    try:
        with stop:
            try:
                model.learn(total_timesteps=max(total - model.num_timesteps, 0),
                            callback=callbacks, reset_num_timesteps=checkpoint is None)
            except KeyboardInterrupt:  # a second signal, or one before training began
                stop.requested = True
            except Exception as e:
                monitor.write_status(status="failed", error=f"{type(e).__name__}: {e}")
                raise
            if stop.requested:
                save_checkpoint(model, run_dir, training["keep_checkpoints"])
                monitor.write_status(status="interrupted")
                raise Interrupted(f"interrupted at {model.num_timesteps} steps, checkpoint "
                                  f"saved; continue with: fop-rl train --run-dir {run_dir} "
                                  "--resume")
        with rundir.atomic_path(run_dir / rundir.MODEL) as tmp, evaluated_weights(model):
            model.save(tmp)
        with rundir.atomic_path(run_dir / rundir.VECNORM) as tmp:
            env.save(str(tmp))
        save_checkpoint(model, run_dir, training["keep_checkpoints"])
        episodes = training["final_eval_episodes"]
        if episodes and not (run_dir / rundir.FINAL_EVALUATION).exists():
            try:
                save_final(run_dir, evaluate(run_dir, episodes, "last"))
            except Exception as e:  # resuming the run makes it again
                monitor.write_status(status="failed", error=f"final evaluation: "
                                     f"{type(e).__name__}: {e}")
                raise
        monitor.write_status(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    finally:
        monitor.close()
        env.close()
        eval_env.close()
    return run_dir
