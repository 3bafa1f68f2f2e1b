"""End-to-end PPO throughput: env steps/s with momentum and with fop-momentum, in one process.

One PPO model per variant, built from the same packaged config and seed, trains in turns: each
turn is ``--steps`` more environment steps (whole rollouts with their updates) for every
variant, in reverse order every other turn. Short alternating turns put the shared machine's
slow and fast moments on both variants alike; ratios are per turn, then medians. The time is
also split between collecting rollouts and PPO's updates, where the optimizer works (the
rollouts' cost varies with what each policy does: falls and resets). Last, each model repeats
PPO's update on its last rollout, alternating, ``--update-repeats`` times: the optimizer's share
of the cost measured with the environment left out, and with less of the machine's noise.
With ``--vec-env both`` it also compares DummyVecEnv and SubprocVecEnv for momentum.

    python benchmarks/throughput.py [--steps 8192] [--repeats 8] [--update-repeats 10]
                                    [--vec-env dummy|both] [--backend envpool|gymnasium]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model


class PhaseTimer(BaseCallback):
    """Seconds spent collecting rollouts and seconds spent in PPO's updates, added up."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts = self.updates = 0.0
        self._mark = 0.0

    def _lap(self) -> float:
        previous, self._mark = self._mark, time.perf_counter()
        return self._mark - previous

    def _on_training_start(self) -> None:
        self._lap()

    def _on_rollout_start(self) -> None:  # an update (or the start) just ended
        self.updates += self._lap()

    def _on_rollout_end(self) -> None:
        self.rollouts += self._lap()

    def _on_training_end(self) -> None:
        self.updates += self._lap()

    def _on_step(self) -> bool:
        return True


def build(env_id: str, optimizer: str, vec_env: str, backend: str) -> BaseAlgorithm:
    cfg = config.load(env_id=env_id, overrides=[f"training.optimizer={optimizer}",
                                                f"env.vec_env={vec_env}",
                                                f"env.backend={backend}"])
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], cfg["training"]["seed"], None)
    return build_model(cfg, env)


def run_turn(model: BaseAlgorithm, steps: int) -> tuple[float, PhaseTimer]:
    """Train ``steps`` more environment steps: their rate, and where the time went."""
    timer = PhaseTimer()
    before = model.num_timesteps
    start = time.perf_counter()
    model.learn(steps, callback=timer, reset_num_timesteps=False)
    return (model.num_timesteps - before) / (time.perf_counter() - start), timer


def in_turn(names: list[str], turn: int) -> list[str]:
    """The order of a turn: reversed every other turn, so a drift favours no variant."""
    return names[:: -1 if turn % 2 else 1]


def print_ratio(label: str, values: list[float], baseline: list[float]) -> None:
    ratios = [a / b for a, b in zip(values, baseline, strict=True)]
    print(f"  {label}: median {statistics.median(ratios):.3f}x "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


def train_args(optimizer: str, seed: int, timesteps: int, run_dir: Path,
               settings: list[str]) -> list[str]:
    """``fop-rl train``'s arguments for one benchmark run, ``settings`` as ``--set`` items."""
    argv = ["--optimizer", optimizer, "--seed", str(seed), "--timesteps", str(timesteps),
            "--run-dir", str(run_dir), "--no-progress"]
    for item in settings:
        argv += ["--set", item]
    return argv


def train_at_once(runs: dict[str, list[str]], cwd: Path | None = None) -> dict[str, float]:
    """``fop-rl train`` processes started together, one per name with its arguments (``python
    -m`` from ``cwd`` imports that checkout's code): seconds from their start to each one's
    exit. SystemExit when one fails."""
    start = time.perf_counter()
    procs = {name: subprocess.Popen([sys.executable, "-m", "fop_rl.cli", "train", *argv],
                                    cwd=cwd, stdout=subprocess.DEVNULL)
             for name, argv in runs.items()}
    seconds: dict[str, float] = {}
    while len(seconds) < len(procs):
        time.sleep(0.1)
        for name, proc in procs.items():
            if name in seconds or proc.poll() is None:
                continue
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(map(str, proc.args))} failed")
            seconds[name] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="BipedalWalker-v3")
    parser.add_argument("--steps", type=int, default=8192, help="environment steps per turn")
    parser.add_argument("--repeats", type=int, default=8, help="turns per variant")
    parser.add_argument("--update-repeats", type=int, default=10,
                        help="updates on a fixed rollout per model, alternating")
    parser.add_argument("--vec-env", choices=("dummy", "both"), default="dummy",
                        help="both: also momentum in subprocess envs (gymnasium backend)")
    parser.add_argument("--backend", choices=config.BACKENDS, default="envpool")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {"momentum": ("momentum", "dummy", args.backend),
                "fop-momentum": ("fop-momentum", "dummy", args.backend)}
    if args.vec_env == "both":
        variants["momentum (subproc)"] = ("momentum", "subproc", "gymnasium")
    models = {name: build(args.env, *spec) for name, spec in variants.items()}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    rollouts: dict[str, list[float]] = {name: [] for name in variants}
    updates: dict[str, list[float]] = {name: [] for name in variants}
    for turn in range(args.repeats):
        for name in in_turn(list(models), turn):
            rate, timer = run_turn(models[name], args.steps)
            rates[name].append(rate)
            rollouts[name].append(timer.rollouts)
            updates[name].append(timer.updates)
            print(f"  {name}: {rate:.0f} steps/s, rollouts {timer.rollouts:.2f} s, "
                  f"updates {timer.updates:.2f} s", flush=True)
    update_seconds: dict[str, list[float]] = {name: [] for name in ("momentum", "fop-momentum")}
    for turn in range(args.update_repeats):
        for name in in_turn(list(update_seconds), turn):
            start = time.perf_counter()
            models[name].train()
            update_seconds[name].append(time.perf_counter() - start)
    for model in models.values():
        model.get_env().close()
    cfg = config.load(env_id=args.env)
    print(f"\n{args.env} ({args.backend}), {cfg['env']['n_envs']} envs x "
          f"{cfg['ppo']['n_steps']} steps, "
          f"batch {cfg['ppo']['batch_size']}, {cfg['ppo']['n_epochs']} epochs; {args.repeats} "
          f"turns of {args.steps} steps, torch {torch.__version__}, 1 thread")
    for name in variants:
        print(f"  {name:20s} median {statistics.median(rates[name]):7.0f} env steps/s; "
              f"per turn: rollouts {statistics.median(rollouts[name]):.2f} s, "
              f"updates {statistics.median(updates[name]):.2f} s")
    for name in variants:
        if name != "momentum":
            print_ratio(f"{name} / momentum, env steps/s", rates[name], rates["momentum"])
    print_ratio("fop-momentum / momentum, seconds in updates", updates["fop-momentum"],
                updates["momentum"])
    print(f"  one update on a fixed rollout, median of {args.update_repeats}: "
          + ", ".join(f"{name} {statistics.median(s):.3f} s" for name, s in
                      update_seconds.items()))
    print_ratio("fop-momentum / momentum, seconds per update on a fixed rollout",
                update_seconds["fop-momentum"], update_seconds["momentum"])


if __name__ == "__main__":
    main()
