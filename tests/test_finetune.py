"""Fine-tuning from another run: its weights and statistics, its record, its checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecNormalize

from fop_rl import config, rundir
from fop_rl.envs import make_train_env
from fop_rl.train import build_model, load_source, start_from
from tests.conftest import TINY, run_cli, tiny_args

PENDULUM = Path(__file__).parent.parent / "docs" / "examples" / "pendulum.yaml"


def test_fine_tuning_starts_from_the_source_policy_and_statistics(trained_run: Path):
    cfg = config.load(env_id="BipedalWalkerHardcore-v3", overrides=[
        *TINY, "training.optimizer=momentum", f"training.init_from={trained_run}"])
    env = make_train_env(cfg["env"], cfg["ppo"]["gamma"], seed=5, monitor_dir=None)
    model = build_model(cfg, env)
    run, source, stats = load_source(cfg)
    assert run.which == "best"
    record = start_from(model, env, run, source, stats)
    assert record["env_id"] == "BipedalWalker-v3" and record["optimizer"] == "fop-momentum"
    for (name, mine), theirs in zip(model.policy.state_dict().items(),
                                    source.policy.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=name)
    saved = VecNormalize.load(str(trained_run / rundir.BEST_VECNORM), env.venv)
    np.testing.assert_array_equal(env.obs_rms.mean, saved.obs_rms.mean)
    np.testing.assert_array_equal(env.obs_rms.var, saved.obs_rms.var)
    assert env.training  # the statistics keep adapting to the new terrain
    # a fresh optimizer of the new run's kind: no state, nothing of the source's FOP
    assert isinstance(model.policy.optimizer, torch.optim.SGD)
    assert len(model.policy.optimizer.state) == 0
    env.close()


def test_fine_tuning_run_records_its_source_and_resumes(trained_run: Path, tmp_path: Path,
                                                        capsys):
    run_dir = tmp_path / "hard"
    code, _, err = run_cli(capsys, "train", "--env", "BipedalWalkerHardcore-v3", "--optimizer",
                           "momentum", "--timesteps", "512", "--run-dir", run_dir,
                           "--init-from", trained_run, "--init-model", "last", *tiny_args())
    assert code == 0, err
    # the walker's discount (0.999) is not the hard terrain config's (0.99): said once
    assert err.count("learned its values with ppo.gamma 0.999; this run uses 0.99") == 1
    saved = rundir.read_config(run_dir)["training"]
    assert saved["init_from"] == str(trained_run) and saved["init_model"] == "last"
    source = rundir.read_status(run_dir)["init_from"]
    assert source["model"] == "last" and source["env_id"] == "BipedalWalker-v3"
    path = run_dir / rundir.CONFIG
    path.write_text(path.read_text().replace("total_timesteps: 512", "total_timesteps: 1024"))
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    assert rundir.read_status(run_dir)["timesteps_done"] >= 1024


def test_sweep_fine_tunes_every_seed_from_one_start(trained_run: Path, tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    args = ["sweep", "--env", "BipedalWalkerHardcore-v3", "--optimizers", "momentum",
            "--seeds", "0-1", "--timesteps", "256", "--jobs", "2", "--runs-dir", runs,
            "--init-from", trained_run]
    for item in TINY:
        args += ["--set", item]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, out + err
    for seed in (0, 1):
        run_dir = runs / "BipedalWalkerHardcore-v3" / "momentum" / f"seed-{seed}"
        assert rundir.read_status(run_dir)["init_from"]["run_dir"] == str(trained_run)


def test_fine_tuning_from_other_spaces_is_refused(trained_run: Path, tmp_path: Path, capsys):
    code, _, err = run_cli(capsys, "train", "--config", PENDULUM, "--init-from", trained_run,
                           "--run-dir", tmp_path / "x", *tiny_args())
    assert code == 2 and err.count("\n") == 1 and "observation space" in err
    assert not (tmp_path / "x").exists()
    code, _, err = run_cli(capsys, "train", "--init-from", tmp_path / "nothing",
                           "--run-dir", tmp_path / "x", *tiny_args())
    assert code == 2 and "does not exist" in err and not (tmp_path / "x").exists()
