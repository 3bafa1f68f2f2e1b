"""Our rollout loop (fop_rl.rollout) against SB3's, on the packaged walker (EnvPool).

Times CompiledPPO's rollout, which is fop_rl.rollout's loop on these environments, against
SB3's ``collect_rollouts`` with the same compiled policy forward (CompiledPPO's rollout before
it), interleaved, CPU time of the main thread and of the process, medians of per-repeat ratios.
Our loop saves the VecEnv layers' calls, info dicts and copies on steps where no episode ends;
with a policy that walks (``--walking``: the committed start) those are more of the steps.
``--check`` first collects three rollouts with each loop from the same seed and compares them:
the buffers, the normalisation statistics and the episodes logged (returns and lengths) must
be the same, bit for bit. ``--forward``: our loop with the compiled policy forward against it
with the NumPy forward (fop_rl.numpy_policy), instead of the two loops.

    python benchmarks/rollout_loop.py [--repeats 7] [--walking] [--check] [--forward]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from fop_rl import config
from fop_rl.compiled import CompiledPPO
from fop_rl.envs import make_train_env
from fop_rl.saved import load_model, load_stats
from fop_rl.train import build_model

START = Path(__file__).resolve().parents[1] / "docs/results/starts/walker-momentum-seed-9"


class _Continue(BaseCallback):
    def _on_step(self) -> bool:
        return True


def sb3_rollout(model: CompiledPPO, env, callback: BaseCallback, n_steps: int) -> bool:
    return model.sb3_collect_rollouts(env, callback, model.rollout_buffer, n_steps)


def our_rollout(model: CompiledPPO, env, callback: BaseCallback, n_steps: int,
                numpy_forward: bool = True) -> bool:
    model.numpy_rollouts = numpy_forward
    return model.collect_rollouts(env, callback, model.rollout_buffer, n_steps)


def build(walking: bool) -> tuple[CompiledPPO, object, BaseCallback]:
    """The packaged walker's model and training environments, seed 0, ready to collect."""
    cfg = config.load(None, None, [])
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
    model = build_model(cfg, env)
    if walking:
        model.policy.load_state_dict(load_model(START / "model.zip").policy.state_dict())
        stats = load_stats(START / "vecnormalize.pkl")
        env.obs_rms, env.ret_rms = stats.obs_rms, stats.ret_rms
    _, callback = model._setup_learn(10**9, _Continue())
    callback.on_training_start(locals(), globals())
    return model, env, callback


def check(walking: bool) -> None:
    """Three rollouts with each loop from the same seed: the same, bit for bit."""
    # one after the other: building a model seeds torch's global generator, which both sample
    sb3, sb3_env, sb3_callback = build(walking)
    for _ in range(3):
        sb3_rollout(sb3, sb3_env, sb3_callback, sb3.n_steps)
    ours, our_env, our_callback = build(walking)
    for _ in range(3):
        our_rollout(ours, our_env, our_callback, ours.n_steps, numpy_forward=False)
    for name in ("observations", "actions", "rewards", "episode_starts", "values", "log_probs",
                 "advantages", "returns"):
        assert np.array_equal(getattr(sb3.rollout_buffer, name),
                              getattr(ours.rollout_buffer, name)), name
    for name in ("obs_rms", "ret_rms"):
        for part in ("mean", "var", "count"):
            assert np.array_equal(getattr(getattr(sb3_env, name), part),
                                  getattr(getattr(our_env, name), part)), (name, part)
    def episodes(model: CompiledPPO) -> list[tuple[float, int]]:  # not "t", the wall clock
        return [(info["r"], info["l"]) for info in model.ep_info_buffer]

    assert episodes(sb3) == episodes(ours)
    print(f"check: 3 rollouts, {len(sb3.ep_info_buffer)} episodes: the same, bit for bit")


def cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.thread_time(), usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--walking", action="store_true",
                        help="start from the walking policy in docs/results/starts/")
    parser.add_argument("--check", action="store_true",
                        help="first check that both loops collect the same rollouts")
    parser.add_argument("--forward", action="store_true",
                        help="our loop's compiled forward against its NumPy forward")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.check:
        check(args.walking)
    model, env, callback = build(args.walking)
    if args.forward:
        loops = {"compiled forward": lambda: our_rollout(model, env, callback, model.n_steps,
                                                         numpy_forward=False),
                 "NumPy forward": lambda: our_rollout(model, env, callback, model.n_steps)}
    else:
        loops = {"SB3's loop": lambda: sb3_rollout(model, env, callback, model.n_steps),
                 "our loop": lambda: our_rollout(model, env, callback, model.n_steps,
                                                 numpy_forward=False)}
    for loop in loops.values():  # compiled, and episodes under way
        loop()
        loop()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    for repeat in range(args.repeats):
        for name in (list(loops) if repeat % 2 == 0 else list(loops)[::-1]):
            before = cpu()
            loops[name]()
            times[name].append(tuple(b - a for a, b in zip(before, cpu(), strict=True)))
    steps = model.n_steps * env.num_envs
    episodes = len(model.ep_info_buffer)
    print(f"per rollout of {steps} steps, {'walking' if args.walking else 'fresh'} policy "
          f"({episodes} episodes in SB3's info buffer), medians of {args.repeats}:")
    for name, samples in times.items():
        main_cpu, process = (statistics.median(s[i] for s in samples) for i in (0, 1))
        print(f"  {name:16s} main thread {main_cpu:.3f} s CPU, process {process:.3f} s CPU")
    first, second = loops
    for i, what in enumerate(("main thread", "process")):
        ratios = [a[i] / b[i] for a, b in zip(times[first], times[second], strict=True)]
        print(f"  {first} / {second}, {what}: {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
