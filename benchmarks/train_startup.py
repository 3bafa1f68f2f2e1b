"""Where a training run's start-up goes: each phase timed in fresh processes, medians of repeats.

A fresh Python process goes through the phases of ``fop-rl train`` up to its first rollout, in
the order a run meets them, timing each one (wall time, one torch thread): the libraries'
imports (gymnasium, torch, stable-baselines3, EnvPool, and torch._dynamo, which torch.optim
imports when the first optimizer is made), then what is ours: importing fop_rl's training
modules, checking the packaged config, making the EnvPool environments, building PPO with its
optimizer. ``--optimizer`` picks the run's optimizer.

    python benchmarks/train_startup.py [--repeats 5] [--optimizer fop-momentum]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROGRAM = r"""
import json, sys, time
phases, last = {}, time.perf_counter()
def lap(name):
    global last
    now = time.perf_counter(); phases[name] = now - last; last = now
import gymnasium; lap("import gymnasium")
import torch; lap("import torch")
torch.set_num_threads(1)
import stable_baselines3; lap("import stable_baselines3")
import envpool; lap("import envpool")
torch.optim.SGD([torch.zeros(1, requires_grad=True)])
lap("torch.optim's first optimizer (torch._dynamo)")
from fop_rl import config
from fop_rl.envs import make_train_env
from fop_rl.train import build_model; lap("import fop_rl's training modules [ours]")
cfg = config.load(env_id="BipedalWalker-v3", overrides=["training.optimizer=" + sys.argv[1]])
lap("load and check the config [ours]")
env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
lap("make the EnvPool environments [ours]")
model = build_model(cfg, env); lap("build PPO and its optimizer [ours]")
print(json.dumps(phases))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--optimizer", default="fop-momentum")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", PROGRAM, args.optimizer], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.splitlines()[-1]))
    print(f"Start-up of a training run ({args.optimizer}), medians of {args.repeats} fresh "
          "processes:")
    totals = [sum(run.values()) for run in runs]
    for phase in runs[0]:
        seconds = statistics.median(run[phase] for run in runs)
        print(f"  {phase:48s} {seconds:6.2f} s")
    ours = [sum(s for p, s in run.items() if "[ours]" in p) for run in runs]
    print(f"  {'total':48s} {statistics.median(totals):6.2f} s, of which ours "
          f"{statistics.median(ours):.2f} s")


if __name__ == "__main__":
    main()
