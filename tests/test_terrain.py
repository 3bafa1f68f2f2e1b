"""The terrain walker: exact at plain and hardcore, parametric in between and beyond, and the
curriculum that takes a run through terrains."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import fop_rl  # noqa: F401  (registers the terrain walker)
from fop_rl import rundir
from fop_rl.terrain import ENV_ID, TERRAIN_STEP, TerrainError, presets, resolve

from .conftest import run_cli, tiny_args

OBSTACLE_OUTLINE = (153, 153, 153)  # gymnasium's obstacle colour, nowhere else in a frame


def trajectory(env: gymnasium.Env, seed: int, steps: int) -> list:
    """Observations, rewards and ends of random actions, resets included."""
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 4)).astype(np.float32)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append(obs)
    env.close()
    return out


@pytest.mark.parametrize(("reference", "preset"), [("BipedalWalker-v3", None),
                                                    ("BipedalWalker-v3", "flat"),
                                                    ("BipedalWalkerHardcore-v3", "hardcore")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_and_hardcore_are_exact_end_points(reference: str, preset: str | None, seed: int):
    expected = trajectory(gymnasium.make(reference, max_episode_steps=2000), seed, 2500)
    got = trajectory(gymnasium.make(ENV_ID, terrain=preset), seed, 2500)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        if isinstance(theirs, tuple):
            np.testing.assert_array_equal(mine[0], theirs[0])
            assert mine[1:] == theirs[1:]
        else:
            np.testing.assert_array_equal(mine, theirs)
    assert any(isinstance(t, tuple) and (t[2] or t[3]) for t in expected)  # episodes ended


def test_obstacles_change_what_the_lidar_sees():
    # the first obstacle stands at step 20, within the lidar's reach at the start
    flat, _ = gymnasium.make(ENV_ID).reset(seed=4)
    stump, _ = gymnasium.make(ENV_ID, terrain={"stump_height": 3}).reset(seed=4)
    lidar = slice(14, 24)  # fractions of the lidar's range, nearest hit along each ray
    np.testing.assert_allclose(flat[lidar][:8], stump[lidar][:8], atol=0.01)  # the pad
    assert np.all(flat[lidar][8:] == 1.0) and np.all(stump[lidar][8:] < 0.95)  # the stump


def obstacle_boxes(env: gymnasium.Env) -> list[tuple[float, float]]:
    """(width, height) in terrain steps of every obstacle polygon of the current course."""
    boxes = []
    for body in env.unwrapped.terrain:
        vertices = np.array(body.fixtures[0].shape.vertices)
        if len(vertices) == 4:
            size = (vertices.max(axis=0) - vertices.min(axis=0)) / TERRAIN_STEP
            boxes.append((float(size[0]), float(size[1])))
    return boxes


def test_sizes_are_drawn_from_continuous_ranges():
    env = gymnasium.make(ENV_ID, terrain={"stump_height": [0.3, 0.7], "stump_width": [1, 2]})
    boxes = []
    for seed in range(5):
        env.reset(seed=seed)
        boxes += obstacle_boxes(env)
    widths, heights = np.array(boxes).T
    assert len(boxes) > 20
    assert np.all((heights > 0.3 - 1e-3) & (heights < 0.7 + 1e-3))  # Box2D keeps float32
    assert len(np.unique(np.round(heights, 3))) > 10  # continuous, not whole steps
    assert set(np.round(widths, 3)) == {1.0, 2.0}  # whole numbers: drawn as gymnasium draws


def test_set_terrain_applies_from_the_next_episode():
    env = gymnasium.make(ENV_ID)
    env.reset(seed=0)
    assert obstacle_boxes(env) == []
    env.unwrapped.set_terrain("pits")
    assert obstacle_boxes(env) == []  # the running course is left alone
    env.reset()
    walls = obstacle_boxes(env)  # a pit's walls: one step wide, 4 deep
    assert walls and all(np.allclose(box, (1, 4), atol=1e-3) for box in walls)


@pytest.mark.parametrize("name", list(presets()))
def test_every_preset_builds_and_steps(name: str):
    env = gymnasium.make(ENV_ID, terrain=name)
    assert env.observation_space == gymnasium.make("BipedalWalker-v3").observation_space
    assert env.spec.max_episode_steps == 2000
    for item in trajectory(env, 0, 60):
        obs = item[0] if isinstance(item, tuple) else item
        assert obs.shape == (24,) and np.all(np.isfinite(obs))


@pytest.mark.parametrize(("spec", "message"), [
    ("nope", "unknown terrain preset 'nope' (known: flat, hardcore,"),
    ({"stump_hight": 1}, "unknown terrain parameter 'stump_hight'"),
    ({"pit_gap": [3, 1]}, "terrain parameter pit_gap is a range with low > high, got [3, 1]"),
    ({"stump_height": -1}, "terrain parameter stump_height must be > 0 (a size), got -1"),
    ({"stair_width": [2.5, 3]}, "stair_width counts whole terrain steps"),
    ({"roughness": "high"}, "terrain parameter roughness must be a number >= 0"),
    ({"preset": "stumps", "pit_gap": [1, 2, 3]}, "pit_gap must be a number or a range"),
])
def test_bad_terrains_are_named(spec, message: str):
    with pytest.raises(TerrainError, match=None) as info:
        resolve(spec)
    assert message in str(info.value)


def test_preset_plus_overrides():
    assert resolve({"preset": "stumps", "roughness": 2.0}) == resolve(
        {"stump_height": [1, 2], "roughness": 2.0})


def test_render_draws_the_obstacles():
    frames = {}
    for name, spec in (("flat", None), ("stump", {"stump_height": 3})):
        env = gymnasium.make(ENV_ID, terrain=spec, render_mode="rgb_array")
        env.reset(seed=0)
        frames[name] = env.render()
        env.close()
    outline = {name: np.all(frame == OBSTACLE_OUTLINE, axis=-1).sum()
               for name, frame in frames.items()}
    assert outline["flat"] == 0 and outline["stump"] > 20


# --- configuration and the command line ---------------------------------------------------


def test_train_on_a_preset_records_it_and_evaluates_on_another(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--terrain", "stumps-low", "--optimizer", "momentum",
                           "--timesteps", "512", "--run-dir", run_dir,
                           *tiny_args("--set", "env.terrain.roughness=0.5"))
    assert code == 0, err
    config = rundir.read_config(run_dir)
    assert config["env"]["id"] == ENV_ID and config["env"]["backend"] == "gymnasium"
    assert config["env"]["terrain"].given == {"preset": "stumps-low", "roughness": 0.5}
    assert config["env"]["terrain"] == resolve({"preset": "stumps-low", "roughness": 0.5})
    assert rundir.read_status(run_dir)["terrain"] == {"preset": "stumps-low", "roughness": 0.5}
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--terrain", "pits", "--episodes", "2",
                             "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["terrain"] == "pits" and result["backend"] == "gymnasium"


def test_a_walker_run_evaluates_and_renders_on_a_terrain(trained_run: Path, tmp_path: Path,
                                                          capsys):
    # the walker trained on EnvPool: a parametric terrain runs on gymnasium
    code, out, err = run_cli(capsys, "evaluate", trained_run, "--terrain", "stumps",
                             "--episodes", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["env_id"], result["terrain"], result["backend"]) == (ENV_ID, "stumps",
                                                                         "gymnasium")
    code, out, err = run_cli(capsys, "evaluate", trained_run, "--terrain", "hardcore",
                             "--episodes", "2", "--json")
    assert code == 0 and json.loads(out)["backend"] == "envpool", err  # EnvPool has that one
    code, _, err = run_cli(capsys, "evaluate", trained_run, "--terrain", "stumps", "--backend",
                           "envpool")
    assert code == 2 and err == ("error: envpool simulates only the flat and hardcore "
                                 "terrains: pass --backend gymnasium\n")
    out_file = tmp_path / "stumps.gif"
    code, _, err = run_cli(capsys, "render", trained_run, "--terrain", "stumps", "--out",
                           out_file, "--scale", "0.25", "--fps", "10")
    assert code == 0 and out_file.stat().st_size > 0, err


def test_sweep_and_report_keep_one_env_level(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "sweep", "--terrain", "pits-narrow", "--optimizers",
                             "momentum", "--seeds", "0", "--timesteps", "512", "--jobs", "1",
                             "--runs-dir", runs, *tiny_args()[:-1])
    assert code == 0, out + err
    env = "fop_rl-BipedalWalkerTerrain-v0-pits-narrow"
    assert rundir.read_status(runs / env / "momentum" / "seed-0")["status"] == "complete"
    assert [p.name for p in runs.iterdir() if p.name != "logs"] == [env]
    code, out, err = run_cli(capsys, "report", runs, "--out", tmp_path / "report")
    assert code == 0, err
    assert list(json.loads((tmp_path / "report" / "report.json").read_text())) == [env]


def test_tune_on_a_terrain(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "tune", "--terrain", "stumps-low", "--optimizer",
                             "momentum", "--trials", "1", "--timesteps", "512", "--seeds", "100",
                             "--jobs", "1", "--pruner", "none", "--runs-dir", runs,
                             *tiny_args()[:-1])
    assert code == 0, out + err
    folder = runs / "tune" / "fop_rl-BipedalWalkerTerrain-v0-stumps-low" / "momentum"
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["env"]["id"] == ENV_ID and best["env"]["terrain"] == "stumps-low"
    trained = rundir.read_config(folder / "trial-0" / "seed-100")
    assert trained["env"]["terrain"].given == "stumps-low"


@pytest.mark.parametrize(("argv", "message"), [
    (["--terrain", "nope"], "unknown terrain preset 'nope'"),
    (["--terrain", "stumps", "--set", "env.terrain.pit_gap=[3, 1]"],
     "env.terrain: terrain parameter pit_gap is a range with low > high"),
    (["--terrain", "stumps", "--set", "env.terrain.stump_height=-2"],
     "terrain parameter stump_height must be > 0 (a size), got -2"),
    (["--terrain", "stumps", "--set", "env.terrain.heigth=2"], "unknown terrain parameter"),
    (["--terrain", "stumps", "--set", "env.backend=envpool"],
     "env.backend is envpool, which simulates only the flat and hardcore terrains: use "
     "env.backend=gymnasium"),
    (["--env", "BipedalWalker-v3", "--set", "env.terrain=stumps"],
     "env.terrain needs env.id fop_rl/BipedalWalkerTerrain-v0"),
    (["--terrain", "hardcore", "--set", "training.curriculum=[{terrain: stumps}, "
      "{terrain: hardcore}]"], "training.curriculum[0] needs a rule that ends it"),
    (["--terrain", "hardcore", "--set", "training.curriculum=[{terrain: stumps, steps: 10}, "
      "{terrain: hardcore, steps: 10}]"], "training.curriculum[1] is the last stage"),
    (["--terrain", "hardcore", "--set", "training.curriculum=[{terrain: stump, steps: 10}, "
      "{terrain: hardcore}]"], "training.curriculum[0]: unknown terrain preset 'stump'"),
])
def test_bad_terrain_input_is_one_error_line_and_writes_nothing(argv, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--no-progress", *argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not run_dir.exists()


def test_envpool_runs_the_flat_and_hardcore_presets(tmp_path: Path, capsys):
    code, _, err = run_cli(capsys, "train", "--terrain", "hardcore", "--optimizer", "momentum",
                           "--timesteps", "512", "--run-dir", tmp_path / "run",
                           *tiny_args("--set", "env.backend=envpool"))
    assert code == 0, err
    assert (tmp_path / "run" / "monitor" / "envpool.monitor.csv").exists()


# --- the curriculum ------------------------------------------------------------------------

CURRICULUM = ("training.curriculum=[{terrain: stumps-low, min_return: -1000}, "
              "{terrain: pits, steps: 2304, min_return: 1000}, {terrain: flat}]")


def test_terrain_and_curriculum_are_resolved_once_where_a_config_enters(tmp_path: Path):
    from fop_rl import config as configuration
    from fop_rl.curriculum import Curriculum

    cfg = configuration.load(None, ENV_ID, [CURRICULUM])
    stages = cfg["training"]["curriculum"]
    assert isinstance(stages, Curriculum) and cfg["env"]["terrain"] is stages.final
    assert [s.terrain.name for s in stages.stages] == ["stumps-low", "pits", "flat"]
    assert stages.stages[0].terrain == resolve("stumps-low")
    # config.yaml holds the settings as given; reading it back resolves them again
    given = yaml.safe_load(CURRICULUM.partition("=")[2])
    assert configuration.plain(cfg)["training"]["curriculum"] == given
    assert configuration.plain(cfg)["env"]["terrain"] == "flat"
    rundir.write_config(tmp_path, cfg)
    again = rundir.read_config(tmp_path)
    assert again["training"]["curriculum"] == stages and again["env"]["terrain"].name == "flat"
    assert rundir.env_folder(again) == rundir.env_folder(cfg)


def test_curriculum_advances_on_return_and_steps_and_resumes_in_its_stage(tmp_path: Path,
                                                                          capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--env", ENV_ID, "--optimizer", "momentum",
                           "--timesteps", "3072", "--run-dir", run_dir,
                           *tiny_args("--set", CURRICULUM))
    assert code == 0, err
    # the first evaluation (step 512) passes min_return; pits, its return far off 1000, ends
    # by its other rule after 2304 steps
    history = [0, 512, 2816]
    state = json.loads((run_dir / rundir.CURRICULUM).read_text())
    assert state["stage"] == 2 and state["history"] == history
    assert [e["stage"] for e in state["evaluations"]][:2] == [0, 1]
    status = rundir.read_status(run_dir)
    assert status["curriculum_stage"] == 2 and status["curriculum_history"] == history
    assert rundir.read_config(run_dir)["env"]["terrain"].name == "flat"  # evaluated on the last
    acc = EventAccumulator(str(next((run_dir / "tb").glob("events.out.tfevents.*"))))
    acc.Reload()
    stages = [(e.step, e.value) for e in acc.Scalars("curriculum/stage")]
    assert stages[0][1] == 0 and stages[-1][1] == 2
    assert "curriculum/stage_eval_return" in acc.Tags()["scalars"]

    # a crash after the checkpoint at 2560 (stage 1): resuming continues in stage 1
    saved = json.loads((run_dir / rundir.CHECKPOINTS / "step-2560" / rundir.CURRICULUM)
                       .read_text())
    assert saved["stage"] == 1 and saved["history"] == history[:2]
    (run_dir / rundir.CHECKPOINTS / "latest").write_text("step-2560\n")
    rundir.write_status(run_dir, status="interrupted")
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    state = json.loads((run_dir / rundir.CURRICULUM).read_text())
    assert state["stage"] == 2 and state["history"] == history
