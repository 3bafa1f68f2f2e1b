"""Our rollout loop on the packaged walker's environments: SB3's collect_rollouts bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import load_results

from fop_rl import config, rollout
from fop_rl.compiled import CompiledPPO
from fop_rl.envs import make_train_env
from fop_rl.train import build_model

# short episodes: both a fall and the time limit end some within a rollout
SMALL = ["env.n_envs=4", "env.max_episode_steps=60", "ppo.n_steps=128", "ppo.batch_size=64"]
SETUPS = {"packaged": [],
          "hard-terrain recipe's reward": ["env.action_repeat=3", "env.fall_penalty=0",
                                           "env.reward_scale=5"]}


class StopAt(BaseCallback):
    """Stops the rollout at its ``step``-th call (never, by default)."""

    def __init__(self, step: int = -1):
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.n_calls != self.step


def collected(ours: bool, overrides: list[str], monitor_dir: Path, rollouts: int,
              stop_at: int = -1) -> tuple[PPO, object, list[bool]]:
    """A model of the packaged walker (seed 0) after ``rollouts`` rollouts: SB3's PPO and its
    loop, or CompiledPPO with ours, its forward eager: SB3's, so that the two can agree bit for
    bit (compiled, it agrees to float rounding, tests/test_compiled.py, which the walker's
    simulator then amplifies). Also what each rollout returned."""
    cfg = config.load(None, None, [*SMALL, *overrides, f"ppo.compile={ours}"])
    monitor_dir.mkdir()
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], 0, monitor_dir)
    model = build_model(cfg, env)
    if ours:
        assert isinstance(model, CompiledPPO) and rollout.fits(model, env)
        model.compiled = model.numpy_rollouts = False
    _, callback = model._setup_learn(10**9, StopAt(stop_at))
    callback.on_training_start(locals(), globals())
    returned = [model.collect_rollouts(env, callback, model.rollout_buffer, model.n_steps)
                for _ in range(rollouts)]
    env.close()  # the monitor file written out
    return model, env, returned


@pytest.mark.parametrize("setup", list(SETUPS))
def test_our_rollouts_are_sb3s_bit_for_bit(setup: str, tmp_path: Path):
    sb3, sb3_env, _ = collected(False, SETUPS[setup], tmp_path / "sb3", 3)
    ours, our_env, _ = collected(True, SETUPS[setup], tmp_path / "ours", 3)
    for name in ("observations", "actions", "rewards", "episode_starts", "values", "log_probs",
                 "advantages", "returns"):
        np.testing.assert_array_equal(getattr(ours.rollout_buffer, name),
                                      getattr(sb3.rollout_buffer, name), err_msg=name)
    for stats in ("obs_rms", "ret_rms"):
        for part in ("mean", "var", "count"):
            assert np.array_equal(getattr(getattr(our_env, stats), part),
                                  getattr(getattr(sb3_env, stats), part)), (stats, part)
    np.testing.assert_array_equal(our_env.returns, sb3_env.returns)
    np.testing.assert_array_equal(ours._last_obs, sb3._last_obs)
    assert ours.num_timesteps == sb3.num_timesteps
    episodes = [[(e["r"], e["l"]) for e in model.ep_info_buffer] for model in (sb3, ours)]
    assert episodes[0] == episodes[1]
    lengths = [length for _, length in episodes[0]]
    # both ways an episode ends were taken: a fall, and the time limit with its bootstrap
    repeat = 3 if "env.action_repeat=3" in SETUPS[setup] else 1
    limit = -(-60 // repeat)  # decisions in 60 simulator steps
    assert min(lengths) < limit == max(lengths)
    rows = [load_results(str(tmp_path / who))[["r", "l"]] for who in ("sb3", "ours")]
    assert len(rows[0]) >= len(episodes[0]) and rows[0].equals(rows[1])


def test_a_callback_stops_our_rollout_where_it_stops_sb3s(tmp_path: Path):
    sb3, _, sb3_returned = collected(False, [], tmp_path / "sb3", 1, stop_at=50)
    ours, _, our_returned = collected(True, [], tmp_path / "ours", 1, stop_at=50)
    assert sb3_returned == our_returned == [False]
    assert ours.num_timesteps == sb3.num_timesteps == 50 * 4
    assert ours.rollout_buffer.pos == sb3.rollout_buffer.pos == 49
    np.testing.assert_array_equal(ours._last_obs, sb3._last_obs)
