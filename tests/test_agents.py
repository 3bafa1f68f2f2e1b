"""Agents side by side: rl-baselines3-zoo's released agent evaluated from its folder, episodes
on recorded reset seeds with how and where each ended, a run's checkpoints by name, videos in
real time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from PIL import Image

from fop_rl import agents, episodes, rundir
from fop_rl.stats import mean_ci, paired_win
from tests.conftest import run_cli, tiny_args

ZOO = (Path(__file__).parent.parent
       / "docs/results/hardcore/zoo-agent/ppo-BipedalWalkerHardcore-v3_1")


def one_error_line(err: str, *parts: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, (part, err)


def test_the_zoo_agent_evaluates_on_recorded_seeds_with_its_falls(capsys):
    code, out, err = run_cli(capsys, "evaluate", ZOO, "--episodes", "3", "--seed", "1002",
                             "--json")
    assert code == 0, err
    assert "old gym package" in err and err.count("\n") == 1  # how the SB3 1.x files load
    result = json.loads(out)
    assert result["kind"] == "zoo" and result["backend"] == "gymnasium"
    assert result["seeds"] == [1002, 1004]
    assert [r["seed"] for r in result["per_episode"]] == [1002, 1003, 1004]
    low, high = result["ci"]
    assert low <= result["mean"] <= high and result["mean"] == pytest.approx(
        np.mean(result["returns"]))
    assert sum(result["ends"].values()) == 3
    for record in result["per_episode"]:
        assert record["end"] in ("fell", "time limit", "finished")
        assert 0 <= record["course"] <= 1
        if record["end"] != "finished":
            assert record["at"] in ("stump", "stairs", "pit", "rough", "flat")
    falls = [r["at"] for r in result["per_episode"] if r["end"] == "fell"]
    assert sum(result["falls_at"].values()) == len(falls)
    # the same episodes again: the same numbers
    code, again, _ = run_cli(capsys, "evaluate", ZOO, "--episodes", "1", "--seed", "1002",
                             "--json")
    assert json.loads(again)["returns"] == result["returns"][:1]
    code, out, _ = run_cli(capsys, "evaluate", ZOO, "--episodes", "1", "--seed", "1002")
    assert code == 0 and "95% bootstrap CI" in out and "reset seeds 1002-1002" in out
    assert "over 1 episode of" in out


def test_episodes_are_gymnasiums_own_hard_terrain():
    """The episodes' environment (the terrain walker's hardcore preset, whose obstacles are
    known) plays gymnasium's BipedalWalkerHardcore-v3 step for step."""
    agent = agents.load(ZOO)
    (record,) = episodes.play(agent, [1002])
    env = gymnasium.make("BipedalWalkerHardcore-v3")
    obs, _ = env.reset(seed=1002)
    total, done, steps = 0.0, False, 0
    while not done:
        action, _ = agent.model.predict(agent.stats.normalize_obs(obs[None].astype(np.float32)),
                                        deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action[0])
        total, done, steps = total + float(reward), terminated or truncated, steps + 1
    env.close()
    assert record["return"] == pytest.approx(total, abs=1e-6) and record["steps"] == steps


@pytest.mark.parametrize("damage, named", [
    (lambda z: (z / "BipedalWalkerHardcore-v3" / "config.yml").unlink(), "config.yml"),
    (lambda z: (z / "BipedalWalkerHardcore-v3" / "config.yml").write_text(
        "frame_stack: 4\nnormalize: true\n"), "frame_stack"),
    (lambda z: (z / "BipedalWalkerHardcore-v3" / "vecnormalize.pkl").write_bytes(b"x"),
     "vecnormalize.pkl"),
    (lambda z: (z / "BipedalWalkerHardcore-v3.zip").write_bytes(b"not a zip"), "zip"),
])
def test_a_zoo_folder_that_cannot_be_used_is_one_error_line(tmp_path: Path, capsys, damage,
                                                            named: str):
    folder = tmp_path / "zoo"
    shutil.copytree(ZOO, folder)
    damage(folder)
    code, _, err = run_cli(capsys, "evaluate", folder, "--episodes", "1")
    assert code == 2
    one_error_line(err, named)
    code, _, err = run_cli(capsys, "evaluate", ZOO, "--model", "last")
    assert code == 2 and "leave out --model" in err


def test_last_and_step_n_name_checkpoints(trained_run: Path, tmp_path: Path, capsys):
    """``--model last`` in a run without model.zip (interrupted, or still training) is its
    newest checkpoint that loads; ``--model step-N`` a checkpoint; on evaluate, render and
    inspect."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / rundir.MODEL).unlink()
    (run_dir / rundir.VECNORM).unlink()
    steps = sorted(int(p.name.removeprefix("step-"))
                   for p in (run_dir / "checkpoints").glob("step-*"))
    newest = f"step-{steps[-1]}"
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--model", "last", "--episodes", "1",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == newest and f"newest checkpoint that loads, {newest}" in err
    oldest = f"step-{steps[0]}"
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--model", oldest, "--episodes", "1",
                             "--json")
    assert code == 0 and json.loads(out)["model"] == oldest, err
    code, out, err = run_cli(capsys, "inspect", run_dir, "--model", oldest, "--out",
                             tmp_path / "p.png")
    assert code == 0 and (tmp_path / "p.png").exists(), err
    code, out, err = run_cli(capsys, "render", run_dir, "--model", "last", "--out",
                             tmp_path / "v.gif", "--scale", "0.2")
    assert code == 0 and newest in err, err
    code, _, err = run_cli(capsys, "evaluate", run_dir, "--model", "step-7")
    assert code == 2
    one_error_line(err, "no checkpoint step-7", oldest)
    code, _, err = run_cli(capsys, "evaluate", run_dir / "config.yaml")
    assert code == 2
    one_error_line(err, "is a file of a run", str(run_dir))


def test_videos_play_in_real_time_with_action_repeat(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--timesteps", "256", "--run-dir", run_dir,
                           "--optimizer", "momentum", "--set", "env.action_repeat=3",
                           "--set", "env.backend=gymnasium", *tiny_args())
    assert code == 0, err
    gif = tmp_path / "walk.gif"
    code, out, err = run_cli(capsys, "render", run_dir, "--out", gif, "--model", "last",
                             "--scale", "0.2")
    assert code == 0, err
    with Image.open(gif) as image:
        durations = []
        for frame in range(image.n_frames):
            image.seek(frame)
            durations.append(image.info["duration"])
    # a decision lasts 3 simulator steps of 20 ms: 60 ms a frame
    assert np.median(durations) == 60 and "real time" in out


def test_keep_checkpoints_zero_keeps_every_one(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--timesteps", "2048", "--run-dir", run_dir,
                           "--optimizer", "momentum", "--set", "training.keep_checkpoints=0",
                           "--set", "env.backend=gymnasium", *tiny_args())
    assert code == 0, err
    kept = sorted(int(p.name.removeprefix("step-"))
                  for p in (run_dir / "checkpoints").glob("step-*"))
    assert kept == [512, 1024, 1536, 2048]


def test_mean_ci_and_paired_win():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 1, 200)
    mean, low, high = mean_ci(x)
    assert low < mean < high and mean == pytest.approx(x.mean()) and high - low < 0.5
    assert paired_win(x, x) == (0.5, 0.5, 0.5)
    assert paired_win(x + 1, x) == (1.0, 1.0, 1.0)
    p, low, high = paired_win(x, rng.normal(10, 1, 200))
    assert low < p < high and 0.3 < p < 0.7
