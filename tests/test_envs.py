"""Both simulator backends: the same task behind the same SB3 VecEnv semantics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from fop_rl import config, rundir
from fop_rl.envpool_env import EnvPoolVecEnv
from fop_rl.envs import make_eval_env, make_train_env
from tests.conftest import run_cli, tiny_args

WALKERS = ("BipedalWalker-v3", "BipedalWalkerHardcore-v3")


def env_config(backend: str, env_id: str = "BipedalWalker-v3", **changes) -> dict:
    cfg = config.load(env_id=env_id, overrides=[f"env.backend={backend}"])["env"]
    return {**cfg, **changes}


@pytest.mark.parametrize("env_id", WALKERS)
def test_backends_have_the_same_spaces(env_id: str):
    envs = [make_eval_env(env_config(b, env_id), seed=0, n_envs=2)
            for b in config.BACKENDS]
    reference, other = (e.venv for e in envs)
    assert other.observation_space == reference.observation_space
    assert other.action_space == reference.action_space
    assert other.reset().shape == reference.reset().shape == (2, 24)
    for e in envs:
        e.close()


def run_until_done(venv, policy, limit: int):
    """Step all envs with ``policy()`` until env 0 finishes: its last reward, info, observations."""
    obs = venv.reset()
    for step in range(1, limit + 1):
        venv.step_async(np.repeat(policy()[None], venv.num_envs, axis=0))
        new_obs, rewards, dones, infos = venv.step_wait()
        if dones[0]:
            return step, rewards[0], infos[0], obs[0], new_obs[0]
        obs = new_obs
    raise AssertionError(f"no episode ended within {limit} steps")


def test_a_fall_is_minus_100_and_the_next_episode_starts_at_once():
    venv = EnvPoolVecEnv("BipedalWalker-v3", 2, seed=1, max_episode_steps=2000)
    rng = np.random.default_rng(0)  # flailing legs topple the walker within a few hundred steps
    steps, reward, info, _, new_obs = run_until_done(venv, lambda: rng.uniform(-1, 1, 4), 1000)
    assert reward == -100.0 and steps < 1000
    assert info["TimeLimit.truncated"] is False
    terminal = info["terminal_observation"]
    assert terminal.shape == (24,) and not np.array_equal(terminal, new_obs)
    first = EnvPoolVecEnv("BipedalWalker-v3", 1, seed=1, max_episode_steps=2000).reset()[0]
    # a new episode starts at rest: hull angle and speeds near zero, as the first one did
    assert np.abs(new_obs[:4]).max() < 0.05 and np.abs(first[:4]).max() < 0.05
    venv.close()


@pytest.mark.parametrize("backend", config.BACKENDS)
def test_time_limit_truncates_without_penalty(backend: str):
    venv = make_train_env(env_config(backend, max_episode_steps=30), 0.99, seed=0,
                          monitor_dir=None).venv
    steps, reward, info, _, _ = run_until_done(venv, lambda: np.zeros(4), 100)  # standing still
    assert steps == 30
    assert info["TimeLimit.truncated"] is True and reward > -100
    assert "terminal_observation" in info and info["episode"]["l"] == 30
    venv.close()


def test_seed_fixes_the_episodes_and_reseeding_rebuilds_the_pool():
    def first_obs(seed: int, reseed: int | None = None) -> np.ndarray:
        venv = EnvPoolVecEnv("BipedalWalkerHardcore-v3", 2, seed, max_episode_steps=2000)
        if reseed is not None:
            venv.seed(reseed)
        obs = venv.reset()
        venv.close()
        return obs

    np.testing.assert_array_equal(first_obs(3), first_obs(3))
    assert not np.array_equal(first_obs(3), first_obs(4))
    np.testing.assert_array_equal(first_obs(4, reseed=3), first_obs(3))


def test_envpool_run_trains_resumes_and_evaluates_on_both_backends(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    args = ["--optimizer", "momentum", "--run-dir", run_dir,
            *tiny_args("--set", "env.backend=envpool")]
    code, _, err = run_cli(capsys, "train", "--timesteps", "512", *args)
    assert code == 0, err
    status = rundir.read_status(run_dir)
    assert status["backend"] == "envpool" and "envpool" in status["versions"]
    log = (run_dir / "monitor" / "envpool.monitor.csv").read_text()
    assert log.count("\n") > 3  # header lines and finished episodes (200-step limit)
    # a longer budget continues the same run and appends to its episode log
    config_path = run_dir / "config.yaml"
    config_path.write_text(config_path.read_text().replace("total_timesteps: 512",
                                                           "total_timesteps: 1024"))
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    assert (run_dir / "monitor" / "envpool.monitor.csv").read_text().startswith(log)
    results = {}
    for backend in config.BACKENDS:
        code, out, err = run_cli(capsys, "evaluate", run_dir, "--episodes", "3", "--backend",
                                 backend, "--json")
        assert code == 0, err
        results[backend] = json.loads(out)
        assert results[backend]["backend"] == backend and len(results[backend]["returns"]) == 3
    code, out, _ = run_cli(capsys, "evaluate", run_dir, "--episodes", "2")
    assert code == 0 and "(envpool, pool seed" in out  # the run's own backend by default


def test_backends_give_the_same_returns_to_the_same_policy(trained_run: Path, capsys):
    """Equivalence at small scale: one short-trained policy, 40 deterministic episodes (200-step
    limit, as the run trained) on each backend. Terrains differ (each backend has its own random
    generator), so the check is statistical: the 95% bootstrap CI of the difference of mean
    returns must contain 0. This policy walks a little and falls in every episode (return about
    -92 with a spread of 0.1, about 110 steps), so the CI is a few hundredths wide: a port with
    another fall penalty, reward scale or gait physics would fall outside it. Episodes are
    seeded, so the outcome is the same on every run. The 100-episode check of a walking policy
    is in the README (benchmarks/equivalence.py)."""
    lengths = {}
    returns = {}
    for backend in config.BACKENDS:
        code, out, err = run_cli(capsys, "evaluate", trained_run, "--episodes", "40",
                                 "--backend", backend, "--json")
        assert code == 0, err
        result = json.loads(out)
        returns[backend], lengths[backend] = np.array(result["returns"]), result["lengths"]
    ci = stats.bootstrap((returns["envpool"], returns["gymnasium"]),
                         lambda a, b, axis: a.mean(axis) - b.mean(axis), n_resamples=2000,
                         random_state=np.random.default_rng(0)).confidence_interval
    assert ci.low <= 0 <= ci.high, (ci, returns)
    assert np.mean(lengths["envpool"]) == pytest.approx(np.mean(lengths["gymnasium"]), rel=0.05)


def test_unknown_backend_and_missing_envpool_are_one_line_errors(trained_run: Path, tmp_path,
                                                                  capsys, monkeypatch):
    code, _, err = run_cli(capsys, "train", "--set", "env.backend=mujoco", "--run-dir",
                           tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "env.backend must be one of" in err
    monkeypatch.setitem(sys.modules, "envpool", None)  # as on a machine without it
    code, _, err = run_cli(capsys, "train", "--set", "env.backend=envpool", "--run-dir",
                           tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "pip install envpool" in err
    assert not (tmp_path / "x").exists()
    # a run trained on envpool, evaluated where envpool is missing
    code, _, err = run_cli(capsys, "evaluate", trained_run, "--episodes", "1")
    assert code == 2 and err.count("\n") == 1 and "pip install envpool" in err


def macro_episode(venv, actions: np.ndarray, repeat: int) -> tuple[list[float], int, bool]:
    """One episode of env 0 from reset: each action sent ``repeat`` times by hand (stopping
    at the episode's end); the reward per action, the simulator steps, and whether it fell."""
    venv.reset()
    rewards, steps = [], 0
    for action in actions:
        total = 0.0
        for _ in range(repeat):
            venv.step_async(np.repeat(action[None], venv.num_envs, axis=0))
            _, _, dones, infos = venv.step_wait()
            total, steps = total + float(venv.get_original_reward()[0]), steps + 1
            if dones[0]:
                rewards.append(total)
                return rewards, steps, bool(infos[0].get("fall"))
        rewards.append(total)
    raise AssertionError("the episode did not end")


@pytest.mark.parametrize("backend", config.BACKENDS)
def test_action_repeat_holds_each_action_and_ends_where_the_simulator_does(backend: str):
    """k=3 gives the plain environment's rewards summed over each action's three steps, and the
    episode ends on the same simulator step (a fall here), on either backend."""
    actions = np.random.default_rng(3).uniform(-1, 1, (700, 4)).astype(np.float32)
    plain = make_eval_env(env_config(backend), seed=4, n_envs=1)
    repeated = make_eval_env(env_config(backend, action_repeat=3), seed=4, n_envs=1)
    by_hand, steps, fell = macro_episode(plain, actions, repeat=3)
    held, decisions, fell_too = macro_episode(repeated, actions, repeat=1)
    assert fell and fell_too and decisions == len(by_hand) == -(-steps // 3)
    np.testing.assert_allclose(held, by_hand, rtol=1e-5, atol=1e-4)
    for venv in (plain, repeated):
        venv.close()


@pytest.mark.parametrize("backend", config.BACKENDS)
def test_training_reward_rescores_falls_and_scales_while_logs_keep_the_task(backend: str,
                                                                            tmp_path: Path):
    actions = np.random.default_rng(7).uniform(-1, 1, (700, 4)).astype(np.float32)
    episodes = {}
    for name, changes in (("task", {}), ("shaped", {"fall_penalty": 0.0, "reward_scale": 5.0})):
        venv = make_train_env(env_config(backend, n_envs=1, **changes), 0.99, seed=6,
                              monitor_dir=tmp_path / name)
        episodes[name] = macro_episode(venv, actions, repeat=1)
        venv.close()
    (task, steps, fell), (shaped, steps_too, _) = episodes["task"], episodes["shaped"]
    assert fell and steps == steps_too and task[-1] == -100.0
    np.testing.assert_allclose(shaped[:-1], np.array(task[:-1]) * 5, rtol=1e-5)
    assert shaped[-1] == 0.0  # the fall scores fall_penalty, scaled
    for name in episodes:  # the episode logs score the task
        log = next((tmp_path / name).glob("*.monitor.csv")).read_text().splitlines()
        assert float(log[2].split(",")[0]) == pytest.approx(sum(task), abs=1e-3)


def test_evaluation_scores_the_task_whatever_the_training_reward(trained_run: Path,
                                                                 tmp_path: Path, capsys):
    shaped = tmp_path / "shaped"
    import shutil

    shutil.copytree(trained_run, shaped)
    text = (shaped / "config.yaml").read_text()
    (shaped / "config.yaml").write_text(text.replace("fall_penalty: -100.0", "fall_penalty: 0.0")
                                        .replace("reward_scale: 1.0", "reward_scale: 5.0"))
    assert rundir.read_config(shaped)["env"]["reward_scale"] == 5.0
    results = []
    for run in (trained_run, shaped):
        code, out, err = run_cli(capsys, "evaluate", run, "--episodes", "2", "--json")
        assert code == 0, err
        results.append(json.loads(out)["returns"])
    assert results[0] == results[1]
