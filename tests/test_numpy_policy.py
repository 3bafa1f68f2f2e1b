"""The rollout forward in NumPy against the torch policy: actions, values, log-probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from fop_rl import config, rollout
from fop_rl.compiled import CompiledPPO
from fop_rl.envs import make_train_env
from fop_rl.numpy_policy import NumpyForward, covers
from fop_rl.train import build_model


def agree(policy, obs: np.ndarray) -> None:
    """The NumPy forward equals the policy's forward on ``obs``, from the same seed."""
    forward = NumpyForward.for_policy(policy)
    assert forward is not None
    obs = torch.as_tensor(obs, dtype=torch.float32)
    torch.manual_seed(7)
    with torch.no_grad():
        expected = policy(obs)
        mean = policy.get_distribution(obs).distribution.mean
    torch.manual_seed(7)
    got = forward(obs)
    for name, mine, theirs in zip(("actions", "values", "log_probs"), got, expected,
                                  strict=True):
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype, name
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5, msg=name)
    # the action's mean: the noise drawn with the same seed gives back the same mean
    std = torch.exp(policy.log_std.detach())
    torch.manual_seed(7)
    eps = torch.randn(mean.shape)
    torch.testing.assert_close(got[0] - std * eps, mean, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["envpool", "gymnasium"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_forward_is_the_policys_on_fresh_and_trained_weights(backend: str,
                                                                   activation: str):
    cfg = config.load(None, None, ["env.n_envs=4", "ppo.n_steps=64", "ppo.batch_size=64",
                                   "ppo.n_epochs=2", f"env.backend={backend}",
                                   "training.optimizer=adam"])
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
    model = build_model(cfg, env)
    if activation == "relu":  # the same run's settings, ReLU MLPs
        model = CompiledPPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0,
                            policy_kwargs=dict(activation_fn=torch.nn.ReLU))
    model.numpy_rollouts = False  # the observations come from torch's own rollouts
    observations = [env.reset()]
    agree(model.policy, observations[0])  # fresh
    model.learn(512)  # eight updates
    observations.append(model.rollout_buffer.observations.reshape(-1, 24))
    for obs in observations:
        agree(model.policy, obs)  # trained: the forward reads the weights as they are now
    env.close()


def test_the_forward_reads_the_policys_own_storage():
    model = CompiledPPO("MlpPolicy", make_vec_env("BipedalWalker-v3", n_envs=2, seed=0),
                        n_steps=64, batch_size=64, n_epochs=1, seed=0)
    forward = NumpyForward.for_policy(model.policy)
    for view, p in [(forward.log_std, model.policy.log_std),
                    (forward.mean[0], model.policy.action_net.weight)]:
        assert np.shares_memory(view, p.detach().numpy())
    obs = torch.zeros(3, 24)
    before = forward(obs)[1]
    with torch.no_grad():
        model.policy.value_net.bias += 1.0  # as an optimizer step changes it: in place
    torch.testing.assert_close(forward(obs)[1], before + 1.0)


def test_other_policies_are_left_to_torch():
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    sde = PPO("MlpPolicy", env, use_sde=True, n_steps=64, batch_size=64, seed=0)
    split = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0,
                policy_kwargs=dict(share_features_extractor=False))
    plain = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0)
    assert covers(plain.policy)
    assert not covers(sde.policy) and NumpyForward.for_policy(sde.policy) is None
    assert not covers(split.policy)
    plain.policy.mlp_extractor.policy_net.append(torch.nn.LayerNorm(64))
    assert not covers(plain.policy)


def test_packaged_walker_rollouts_use_the_numpy_forward_and_store_its_numbers(tmp_path: Path):
    """What a rollout stores is the rollout policy's: its values and the log-probabilities of
    its actions, as torch computes them from the buffer."""
    cfg = config.load(None, None, ["env.n_envs=4", "ppo.n_steps=64", "ppo.batch_size=64",
                                   "training.optimizer=adam"])
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, None)
    model = build_model(cfg, env)
    assert isinstance(model, CompiledPPO) and rollout.fits(model, env)
    assert isinstance(model.rollout_forward(), NumpyForward)
    model.learn(128)  # a rollout, then an update
    _, callback = model._setup_learn(10**9, None, reset_num_timesteps=False)
    callback.on_training_start(locals(), globals())
    assert model.collect_rollouts(env, callback, model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    obs = torch.as_tensor(buffer.observations.reshape(-1, 24))
    actions = torch.as_tensor(buffer.actions.reshape(-1, 4))
    with torch.no_grad():
        values, log_probs, _ = model.policy.evaluate_actions(obs, actions)
    # the second rollout's numbers, from the weights after the update
    np.testing.assert_allclose(buffer.values.ravel(), values.numpy().ravel(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(buffer.log_probs.ravel(), log_probs.numpy(), rtol=1e-4,
                               atol=1e-4)
    env.close()
