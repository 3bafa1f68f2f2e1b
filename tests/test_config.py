"""Configs: the packaged ones, one of the user's own, and bad input in them as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fop_rl import config, rundir
from tests.conftest import run_cli, tiny_args

PENDULUM = Path(__file__).parent.parent / "docs" / "examples" / "pendulum.yaml"


def test_a_config_of_ones_own_trains_pendulum(tmp_path: Path, capsys):
    run_dir = tmp_path / "pendulum"
    code, _, err = run_cli(capsys, "train", "--config", PENDULUM, "--timesteps", "1024",
                           "--run-dir", run_dir, *tiny_args())
    assert code == 0, err
    assert rundir.read_status(run_dir)["env_id"] == "Pendulum-v1"
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--episodes", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    # Pendulum's reward is at most 0 per step: a 200-step episode returns between -3300 and 0
    assert all(-3300 < r <= 0 for r in result["returns"]) and result["lengths"] == [200, 200]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["train", "--set", "ppo.n_stpes=3"], "unknown key ppo.n_stpes"),
     (["train", "--set", "optimizers.momentum.lr=0", "--optimizer", "momentum"],
      "optimizers.momentum.lr must be > 0"),
     (["train", "--set", "env.n_envs=0"], "env.n_envs must be >= 1"),
     (["train", "--set", "ppo.gamma=high"], "ppo.gamma must be int or float"),
     (["train", "--optimizer", "rmsprop"], "training.optimizer must be one of"),
     (["train", "--env", "Pendulum-v1"], "no packaged config for 'Pendulum-v1'"),
     (["train", "--set", "env.id=CartPole-v1"], "Discrete action space"),
     (["train", "--set", "env.id=NoSuchEnv-v0"], "not a registered gymnasium environment"),
     (["train", "--timesteps", "0"], "must be >= 1"),
     (["train", "--config", "does-not-exist.yaml"], "does not exist"),
     (["train", "--bogus"], "fop-rl train: unrecognized arguments: --bogus"),
     (["render", "no/such/run", "--scale", "0"], "must be a number > 0"),
     (["evaluate", "no/such/run"], "does not exist"),
     (["render", "no/such/run"], "does not exist")],
)
def test_bad_input_is_one_error_line(argv, message, capsys, tmp_path):
    code, _, err = run_cli(capsys, *argv, "--run-dir", tmp_path / "x") if argv[0] == "train" \
        else run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "x").exists()  # nothing started


def test_bad_config_file_names_file_and_key(tmp_path: Path, capsys):
    path = tmp_path / "walker.yaml"
    text = (Path(config.__file__).parent / "configs" / "bipedal_walker.yaml").read_text()
    path.write_text(text.replace("n_epochs: 10", "n_epoch: 10"))
    code, _, err = run_cli(capsys, "train", "--config", path, "--run-dir", tmp_path / "x")
    assert code == 2 and str(path) in err and "ppo.n_epoch" in err
    path.write_text("env: [unclosed")
    code, _, err = run_cli(capsys, "train", "--config", path, "--run-dir", tmp_path / "x")
    assert code == 2 and "not valid YAML" in err and err.count("\n") == 1


def test_the_hardcore_recipe_is_a_config_not_the_terrains_default():
    """The packaged recipe loads as the screen's arm it packages, and `--env
    BipedalWalkerHardcore-v3` still takes the packaged hardcore config."""
    recipe = config.load(PENDULUM.parents[2] / "configs" / "bipedal_walker_hardcore_recipe.yaml")
    assert recipe["env"]["id"] == "BipedalWalkerHardcore-v3"
    assert (recipe["env"]["action_repeat"], recipe["env"]["fall_penalty"],
            recipe["env"]["reward_scale"]) == (3, 0, 5)
    assert config.config_files()["BipedalWalkerHardcore-v3"].name == "bipedal_walker_hardcore.yaml"
