"""PPO's update with SB3's PPO.train against the same update with its loss compiled
(fop_rl.compiled.CompiledPPO), on one fixed walker rollout, in one process; and the rollouts
alone, SB3's against CompiledPPO's (its policy forward compiled), with their floor: the
environment side of a rollout, without a policy.

For each optimizer, two models start from the same weights and share one rollout of the
packaged walker config (8 envs x 512 steps, EnvPool); the update (10 epochs of 32 minibatches)
then runs alternately on each, the order reversed every other repeat. Time is the thread's CPU
time (one torch thread), so a busy machine's waits do not count; ratios per repeat, then medians.
The first compiled update, which compiles, is reported apart. Then the compiled update's parts
alone, as many of each as an update makes: the compiled gradient's calls on one minibatch, and
the optimizer's steps: what is left of the update is the loop's own work around them.

Rollouts: two models with the same weights, each on its own EnvPool environments made with the
same seed, collect rollouts of 8 x 512 steps in turns (``collect_rollouts``, as ``learn`` calls
it); wall time, since EnvPool steps in its own thread, and CPU time apart: the main thread's
(the policy, SB3's loop, the VecEnv wrappers) and the whole process's (with EnvPool's thread),
which a busy machine does not inflate as it does wall time.

    python benchmarks/compiled_update.py [--repeats 9] [--optimizers momentum fop-momentum]
                                         [--updates-only]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from stable_baselines3.common.logger import configure

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model


def cpu_seconds(model) -> float:
    start = time.thread_time()
    model.train()
    return time.thread_time() - start


def with_compile(cfg: dict, compile_: bool) -> dict:
    """``cfg`` with ``ppo.compile`` set: CompiledPPO, or SB3's own PPO."""
    return {**cfg, "ppo": {**cfg["ppo"], "compile": compile_}}


CLOCKS = {"wall": time.perf_counter, "main thread CPU": time.thread_time,
          "process CPU": time.process_time}


def timed(fn, *args) -> dict[str, float]:
    """Seconds of ``fn(*args)`` on each of :data:`CLOCKS`."""
    start = {name: clock() for name, clock in CLOCKS.items()}
    fn(*args)
    return {name: clock() - start[name] for name, clock in CLOCKS.items()}


def rollout_seconds(model, callback) -> dict[str, float]:
    return timed(model.collect_rollouts, model.env, callback, model.rollout_buffer,
                 model.n_steps)


def steps(env, actions: np.ndarray) -> None:
    for a in actions:
        env.step(a)


def environment_seconds(env, n_steps: int) -> dict[str, dict[str, float]]:
    """Seconds (:data:`CLOCKS`) for ``n_steps`` steps of random actions through each layer of
    the training VecEnv, from the outside in (SB3's VecNormalize, our training reward, SB3's
    VecMonitor, our EnvPool adapter), and through EnvPool's pool alone."""
    actions = np.random.default_rng(0).uniform(-1, 1, (n_steps, *env.action_space.shape))
    actions = np.repeat(actions[:, None], env.num_envs, axis=1).astype(np.float32)
    layers = [env]
    while hasattr(layers[-1], "venv"):
        layers.append(layers[-1].venv)
    seconds = {}
    for layer in layers:
        layer.reset()
        seconds[type(layer).__name__] = timed(steps, layer, actions)
    seconds["EnvPool alone"] = timed(steps, layers[-1].pool, actions)
    return seconds


def medians(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{statistics.median(r[name] for r in runs):.3f} s {name}"
                     for name in CLOCKS)


def time_rollouts(repeats: int) -> None:
    cfg = config.load(env_id="BipedalWalker-v3", overrides=["training.optimizer=momentum"])
    models, callbacks = {}, {}
    for key, compile_ in (("sb3", False), ("compiled", True)):
        env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
        models[key] = build_model(with_compile(cfg, compile_), env)
        models[key].set_logger(configure(None, []))
        _, callbacks[key] = models[key]._setup_learn(10**9, None)
        callbacks[key].on_training_start(locals(), globals())
    models["compiled"].policy.load_state_dict(models["sb3"].policy.state_dict())
    first = rollout_seconds(models["compiled"], callbacks["compiled"])["wall"]
    rollout_seconds(models["sb3"], callbacks["sb3"])
    times: dict[str, list[dict[str, float]]] = {"sb3": [], "compiled": []}
    for repeat in range(repeats):
        for key in (["sb3", "compiled"] if repeat % 2 == 0 else ["compiled", "sb3"]):
            times[key].append(rollout_seconds(models[key], callbacks[key]))
    floors = [environment_seconds(models["sb3"].env, models["sb3"].n_steps)
              for _ in range(repeats)]
    print(f"environment side of a rollout of 4,096 steps (random actions, no policy), through "
          f"each layer (medians of {repeats}):")
    for layer in floors[0]:
        print(f"  {layer}: {medians([f[layer] for f in floors])}")
    for clock in CLOCKS:
        ratios = [a[clock] / b[clock] for a, b in zip(times["sb3"], times["compiled"],
                                                      strict=True)]
        print(f"rollouts, {clock}: CompiledPPO's {statistics.median(ratios):.2f}x as fast as "
              f"SB3's (median of {repeats}, min {min(ratios):.2f}, max {max(ratios):.2f})")
    for key in times:
        print(f"  {key}: {medians(times[key])} per rollout of 4,096 steps")
    print(f"first compiled rollout (compiling) {first:.1f} s wall")


def update_parts(model) -> tuple[float, float]:
    """CPU seconds of the compiled gradient's calls alone and of the optimizer's steps alone, as
    many as one update makes (the optimizer steps the model: time it after the comparison)."""
    rollout = model._rollout_tensors()
    batch = [t[:model.batch_size] for t in rollout]
    params = list(model.policy.parameters())
    values = tuple(p.detach() for p in params)
    name, traced = f"gradients of {model.batch_size}", model._traced[model.batch_size]
    calls = model.n_epochs * (len(rollout[0]) // model.batch_size)
    start = time.thread_time()
    for _ in range(calls):
        grads, _, _ = model._run(name, traced, values, *batch, torch.tensor(0.2))
    gradients = time.thread_time() - start
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    start = time.thread_time()
    for _ in range(calls):
        model.policy.optimizer.step()
    return gradients, time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--optimizers", nargs="+", default=["momentum", "fop-momentum"])
    parser.add_argument("--updates-only", action="store_true",
                        help="skip the rollouts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.updates_only:
        time_rollouts(args.repeats)
    for name in args.optimizers:
        cfg = config.load(env_id="BipedalWalker-v3", overrides=[f"training.optimizer={name}"])
        env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
        plain = build_model(with_compile(cfg, False), env)
        compiled = build_model(with_compile(cfg, True), env)
        compiled.policy.load_state_dict(plain.policy.state_dict())
        for model in (plain, compiled):
            model.set_logger(configure(None, []))
        plain.learn(cfg["ppo"]["n_steps"] * cfg["env"]["n_envs"])  # one rollout (and update)
        compiled.rollout_buffer = plain.rollout_buffer
        compiled._current_progress_remaining = plain._current_progress_remaining
        first = cpu_seconds(compiled)
        ratios, times = [], {"sb3": [], "compiled": []}
        for repeat in range(args.repeats):
            order = [("sb3", plain), ("compiled", compiled)]
            if repeat % 2:
                order.reverse()
            took = {key: cpu_seconds(model) for key, model in order}
            ratios.append(took["sb3"] / took["compiled"])
            for key, value in took.items():
                times[key].append(value)
        print(f"{name}: compiled update {statistics.median(ratios):.2f}x as fast as SB3's "
              f"(median of {args.repeats}, min {min(ratios):.2f}, max {max(ratios):.2f}); "
              f"SB3 {statistics.median(times['sb3']):.3f} s, compiled "
              f"{statistics.median(times['compiled']):.3f} s CPU per update; first compiled "
              f"update (compiling) {first:.1f} s")
        parts = [update_parts(compiled) for _ in range(args.repeats)]
        gradients, steps = (statistics.median(p[i] for p in parts) for i in range(2))
        print(f"  its parts alone: the gradient's calls {gradients:.3f} s, the optimizer's "
              f"steps {steps:.3f} s; the rest of the update (the loop around them) "
              f"{statistics.median(times['compiled']) - gradients - steps:.3f} s")
        env.close()


if __name__ == "__main__":
    main()
