"""The compiled PPO update: SB3's algorithm to float tolerance, FOP included, and a clean fallback
where compilation is unavailable."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from fop_rl import rundir
from fop_rl.compiled import CompiledPPO
from fop_rl.optim import FOP
from tests.conftest import run_cli, tiny_args

OPTIMIZERS = {"momentum": (torch.optim.SGD, {"momentum": 0.9}),
              "fop-momentum": (FOP, {"momentum": 0.9, "hyper_lr": 1e-3})}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_compiled_update_is_sb3s_update(name: str):
    cls, kwargs = OPTIMIZERS[name]
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    settings = dict(n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu",
                    learning_rate=1e-3,
                    policy_kwargs=dict(optimizer_class=cls, optimizer_kwargs=kwargs))
    sb3 = PPO("MlpPolicy", env, **settings)
    sb3.set_logger(configure(None, []))
    sb3.learn(256)  # a rollout in the buffer, and an optimizer with state
    compiled = CompiledPPO("MlpPolicy", env, **settings)
    compiled.set_logger(configure(None, []))
    compiled.policy.load_state_dict(sb3.policy.state_dict())
    # a deep copy: load_state_dict would share the momentum buffers with sb3's optimizer
    compiled.policy.optimizer.load_state_dict(copy.deepcopy(sb3.policy.optimizer.state_dict()))
    compiled.rollout_buffer = copy.deepcopy(sb3.rollout_buffer)
    compiled._current_progress_remaining = sb3._current_progress_remaining
    for model in (sb3, compiled):
        np.random.seed(1)  # the minibatches' order
        model.train()
    for (key, mine), theirs in zip(compiled.policy.state_dict().items(),
                                   sb3.policy.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6, msg=key)
    logged, expected = compiled.logger.name_to_value, sb3.logger.name_to_value
    assert set(logged) == set(expected)
    for key in expected:
        if key != "train/n_updates":  # sb3's counts the update inside learn() as well
            assert logged[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-7), key
    if name == "fop-momentum":
        assert compiled.policy.optimizer.diagnostics(compiled.policy.named_parameters())


def test_a_non_finite_policy_stops_training():
    """The compiled graphs hold no torch.distributions argument checks (and once torch.compile
    has run in a process, dynamo turns those checks off for every distribution, SB3's PPO's
    included): the update checks the parameters itself and stops training with a ValueError."""
    model = CompiledPPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), n_steps=64,
                        batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    with torch.no_grad():
        model.policy.value_net.weight[0, 0] = float("nan")  # every gradient follows
    with pytest.raises(ValueError, match="non-finite values in the policy's parameters"):
        model.learn(128, reset_num_timesteps=False)


@pytest.mark.parametrize("numpy_rollouts", [True, False])
def test_compiled_rollouts_are_sb3s_rollouts(numpy_rollouts: bool):
    """The rollout forward (NumPy, or compiled) samples SB3's actions from the same seed, and
    returns its values and log-probabilities; the policy's own forward is back after it."""
    buffers = []
    for cls in (PPO, CompiledPPO):
        env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
        model = cls("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0,
                    device="cpu")
        model.numpy_rollouts = numpy_rollouts  # SB3's PPO has no such attribute to read
        model.learn(128)  # one rollout, then one update
        assert "forward" not in vars(model.policy)
        buffers.append(model.rollout_buffer)
    assert model.compiled  # compiled, not fallen back to eager
    sb3, compiled = buffers
    for key in ("observations", "actions", "values", "log_probs", "rewards", "returns"):
        np.testing.assert_allclose(getattr(compiled, key), getattr(sb3, key), rtol=1e-5,
                                   atol=1e-6, err_msg=key)


def test_ppo_compile_trains_saves_and_resumes(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--timesteps", "1024", "--run-dir", run_dir,
                           *tiny_args("--set", "ppo.compile=true"))
    assert code == 0, err
    model = PPO.load(run_dir / "model.zip", device="cpu")  # an SB3 model like any other
    assert isinstance(model.policy.optimizer, FOP)
    # as if it had stopped after its checkpoint at 512 steps: it resumes, compiled again
    (run_dir / rundir.CHECKPOINTS / "latest").write_text("step-512\n")
    rundir.write_status(run_dir, status="interrupted")
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    status = rundir.read_status(run_dir)
    assert status["status"] == "complete" and status["timesteps_done"] >= 1024


def test_without_a_compiler_training_goes_on_uncompiled(tmp_path: Path):
    env = {**os.environ, "CXX": str(tmp_path / "no-compiler"), "CC": str(tmp_path / "no-cc"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}  # no compiled kernel to reuse
    result = subprocess.run([sys.executable, "-m", "fop_rl.cli", "train", "--optimizer",
                             "momentum", "--timesteps", "512", "--run-dir", tmp_path / "run",
                             *tiny_args("--set", "ppo.compile=true")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    notes = [line for line in result.stderr.splitlines() if "could not be compiled" in line]
    assert len(notes) == 1 and notes[0].startswith("note: PPO could not be compiled")
    assert "Traceback" not in result.stderr
