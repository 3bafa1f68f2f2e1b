"""The training pipeline end to end, on real BipedalWalker environments and real files."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fop_rl import config, rundir
from fop_rl.optim import FOP
from fop_rl.optimizers import OPTIMIZERS, optimizer_class
from tests.conftest import cli_subprocess, run_cli, tiny_args

RUN_FILES = ["config.yaml", "run.json", "model.zip", "best_model.zip", "vecnormalize.pkl",
             "best_vecnormalize.pkl", "evaluations.npz", "checkpoints/latest", "tb/progress.csv",
             "final_evaluation.json"]


def episode_log(run_dir: Path) -> Path:
    """The first monitor file: one per env (gymnasium), or one for all (envpool)."""
    return sorted((run_dir / "monitor").glob("*.monitor.csv"))[0]


def test_train_writes_the_whole_run_directory(trained_run: Path):
    for name in RUN_FILES:
        assert (trained_run / name).exists(), name
    assert episode_log(trained_run).read_text().count("\n") > 2  # header and episodes
    status = json.loads((trained_run / "run.json").read_text())
    assert status["status"] == "complete" and status["timesteps_done"] == 1024
    assert status["env_steps_per_s"] > 0 and 0 < status["eval_time_s"] < status["wall_time_s"]
    assert set(status["versions"]) >= {"torch", "stable_baselines3", "gymnasium"}
    saved = rundir.read_config(trained_run)
    assert saved["training"]["seed"] == 3 and saved["ppo"]["n_steps"] == 128
    config.validate(saved, "config.yaml")  # reproducible from the directory alone
    with np.load(trained_run / "evaluations.npz") as ev:
        assert ev["timesteps"].tolist() == [512, 1024]
        assert ev["results"].shape == (2, 2) and ev["ep_lengths"].shape == (2, 2)


def test_tensorboard_has_fop_diagnostics(trained_run: Path):
    events = next((trained_run / "tb").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    name = "mlp_extractor.policy_net.0.weight"
    for stat in ("p_norm", "eig_min", "eig_max", "angle_deg", "nonfinite_skips"):
        assert f"fop/{name}/{stat}" in tags["scalars"]
    assert f"fop_p/{name}" in tags["histograms"]
    assert "fop/P" in tags["images"]
    assert "eval/mean_reward" in tags["scalars"]
    norms = [e.value for e in acc.Scalars(f"fop/{name}/p_norm")]
    assert all(np.isfinite(norms))
    # P learned: its eigenvalues spread away from the identity's (all 1)
    spread = [hi.value - lo.value for hi, lo in zip(acc.Scalars(f"fop/{name}/eig_max"),
                                                     acc.Scalars(f"fop/{name}/eig_min"),
                                                     strict=True)]
    assert spread[-1] > 1e-3 and spread[-1] > spread[0]


def test_evaluate_json_and_text(trained_run: Path, capsys):
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--episodes", "2", "--json")
    assert code == 0
    result = json.loads(out)
    assert len(result["returns"]) == 2 and result["model"] == "best"
    assert result["mean"] == pytest.approx(np.mean(result["returns"]))
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--episodes", "1", "--model", "last")
    assert code == 0 and "mean return" in out and "episode 0" in out


def test_final_evaluation_of_the_last_model(trained_run: Path, tmp_path: Path, capsys):
    """A complete run records its last model's deterministic episodes; `evaluate --save` records
    them for a run without, and never over an existing record."""
    final = json.loads((trained_run / "final_evaluation.json").read_text())
    assert final["model"] == "last" and final["episodes"] == 2 and len(final["returns"]) == 2
    code, out, _ = run_cli(capsys, "evaluate", trained_run, "--model", "last", "--episodes", "2",
                           "--json")
    assert json.loads(out)["returns"] == final["returns"]  # the same deterministic episodes
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    code, _, err = run_cli(capsys, "evaluate", copy, "--model", "last", "--episodes", "2",
                           "--save")
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    (copy / "final_evaluation.json").unlink()
    code, _, err = run_cli(capsys, "evaluate", copy, "--episodes", "2", "--save")
    assert code == 2 and "--model last" in err
    code, _, err = run_cli(capsys, "evaluate", copy, "--model", "last", "--episodes", "3",
                           "--save")
    assert code == 0 and "wrote" in err
    saved = json.loads((copy / "final_evaluation.json").read_text())
    # the same episodes; 3 environments side by side instead of 2 batch the policy's forward
    # differently, which moves float32 actions in their last bits
    assert saved["episodes"] == 3 and saved["returns"][:2] == pytest.approx(final["returns"],
                                                                            abs=0.01)


def test_evaluate_a_walker_on_the_hard_terrain(trained_run: Path, capsys):
    code, out, err = run_cli(capsys, "evaluate", trained_run, "--env",
                             "BipedalWalkerHardcore-v3", "--episodes", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["env_id"] == "BipedalWalkerHardcore-v3" and len(result["returns"]) == 2
    for env_id, message in (("Pendulum-v1", "observation space, Box of shape (24,), differs"),
                            ("NoSuchEnv-v0", "not a registered")):
        code, _, err = run_cli(capsys, "evaluate", trained_run, "--env", env_id)
        assert code == 2 and message in err and err.count("\n") == 1


def test_evaluate_is_deterministic(trained_run: Path, capsys):
    first = json.loads(run_cli(capsys, "evaluate", trained_run, "--episodes", "2", "--json")[1])
    again = json.loads(run_cli(capsys, "evaluate", trained_run, "--episodes", "2", "--json")[1])
    assert first["returns"] == again["returns"]


@pytest.mark.parametrize(("suffix", "options", "width"),
                         [(".mp4", [], 600), (".gif", ["--fps", "25", "--scale", "0.5"], 300)])
def test_render_writes_a_readable_video(trained_run: Path, tmp_path: Path, capsys, suffix,
                                        options, width):
    out = tmp_path / f"agent{suffix}"
    code, stdout, _ = run_cli(capsys, "render", trained_run, "--out", out, *options)
    assert code == 0, stdout
    frames = iio.imread(out)
    assert frames.ndim == 4 and frames.shape[0] > 10 and frames.shape[-1] == 3
    assert frames.shape[2] == width
    assert frames.std() > 0  # not a blank video
    written = int(re.search(r"(\d+) frames", stdout)[1])
    assert frames.shape[0] == written if suffix == ".mp4" else frames.shape[0] <= written
    # (GIF writers merge identical consecutive frames)
    code, _, err = run_cli(capsys, "render", trained_run, "--out", out)
    assert code == 2 and "already exists" in err  # never overwritten


def test_hardcore_terrain_trains_on_the_reference_simulator(tmp_path: Path, capsys):
    run_dir = tmp_path / "hardcore"
    code, out, err = run_cli(capsys, "train", "--env", "BipedalWalkerHardcore-v3", "--optimizer",
                             "momentum", "--timesteps", "512", "--run-dir", run_dir,
                             *tiny_args("--set", "env.backend=gymnasium"))
    assert code == 0, err
    final = json.loads((run_dir / rundir.FINAL_EVALUATION).read_text())
    # the finished run in one line: its last model's mean and CI, best evaluation, time
    summary = out.splitlines()[-1]
    assert summary.startswith(f"run complete: {run_dir}, last model {final['mean']:.1f} [")
    assert "over 2 episodes, best evaluation " in summary and "at step 512, trained in" in summary
    for name in [*RUN_FILES, "monitor/0.monitor.csv", "monitor/1.monitor.csv"]:
        assert (run_dir / name).exists(), name
    assert rundir.read_config(run_dir)["env"]["id"] == "BipedalWalkerHardcore-v3"
    code, out, _ = run_cli(capsys, "evaluate", run_dir, "--episodes", "1", "--json")
    assert code == 0 and len(json.loads(out)["returns"]) == 1


@pytest.mark.parametrize("backend", config.BACKENDS)
def test_same_seed_gives_identical_evaluations(tmp_path: Path, capsys, backend: str):
    results = []
    for name in ("a", "b"):
        code, _, err = run_cli(capsys, "train", "--timesteps", "512", "--seed", "7", "--run-dir",
                               tmp_path / name, *tiny_args("--set", f"env.backend={backend}"))
        assert code == 0, err
        with np.load(tmp_path / name / "evaluations.npz") as ev:
            results.append((ev["timesteps"].copy(), ev["results"].copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_interrupted_run_resumes_to_the_end(tmp_path: Path, capsys):
    run_dir = tmp_path / "BipedalWalker-v3" / "fop-momentum" / "seed-0"  # as a sweep's
    proc = cli_subprocess("train", "--timesteps", "3072", "--run-dir", run_dir, *tiny_args())
    deadline = time.monotonic() + 240
    while rundir.latest_checkpoint(run_dir) is None and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
        time.sleep(0.2)
    # while it trains, no second process may resume it, start it over or sweep over it
    for argv in (["train", "--run-dir", run_dir, "--resume"],
                 ["train", "--run-dir", run_dir, "--force", *tiny_args()],
                 ["sweep", "--optimizers", "fop-momentum", "--seeds", "0", "--runs-dir", tmp_path]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and err == (f"error: {run_dir} is being trained by process {proc.pid} "
                                     "on this machine; stop it (Ctrl-C or SIGTERM saves a "
                                     "checkpoint) or let it finish\n"), argv
        assert rundir.latest_checkpoint(run_dir) is not None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    status = rundir.read_status(run_dir)
    assert status["status"] == "interrupted" and status["timesteps_done"] < 3072
    stopped_at = int(rundir.latest_checkpoint(run_dir).name.removeprefix("step-"))

    episodes_before = episode_log(run_dir).read_text()
    code, _, err = run_cli(capsys, "train", "--run-dir", run_dir, "--resume", "--no-progress")
    assert code == 0, err
    status = rundir.read_status(run_dir)
    # SB3 collects whole rollouts (2 envs x 128 steps): the run ends within one of the total
    assert status["status"] == "complete" and 3072 <= status["timesteps_done"] < 3072 + 256
    with np.load(run_dir / "evaluations.npz") as ev:
        assert ev["timesteps"].tolist() == list(range(512, 3073, 512))  # no gap, no repeat
    monitor_log = episode_log(run_dir).read_text()
    assert monitor_log.startswith(episodes_before) and len(monitor_log) > len(episodes_before)
    events = sorted((run_dir / "tb").glob("events.out.tfevents.*"))
    steps = []
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        steps += [e.step for e in acc.Scalars("eval/mean_reward")]
    assert max(steps) >= 3072 and any(s > stopped_at for s in steps)
    # SB3's run counters rise across the resume (SB3 alone restarts them at each learn call)
    rows = list(csv.DictReader((run_dir / "tb" / "progress.csv").open()))
    for key in ("time/iterations", "time/time_elapsed"):
        values = [float(r[key]) for r in rows if r[key]]
        assert values == sorted(values) and values[-1] > values[0], key
    iterations = [int(r["time/iterations"]) for r in rows if r["time/iterations"]]
    assert iterations == list(range(1, len(iterations) + 1))


def file_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_copied_from_another_machine_of_the_same_name_can_resume(tmp_path: Path):
    """Machines share host names ('vm', 'localhost'): the boot id tells this one's live
    process from another machine's pid that happens to be alive here too."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    alive = rundir.process() | {"pid": os.getppid()}  # a live process that is not us
    rundir.write_status(run_dir, status="running", **alive)
    with pytest.raises(rundir.RunError, match="is being trained by process"):
        rundir.check_not_training(run_dir)
    rundir.write_status(run_dir, boot_id="another machine's boot")
    rundir.check_not_training(run_dir)
    assert rundir.alive_here(rundir.read_status(run_dir)) is None


def test_complete_run_is_not_overwritten(trained_run: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    before = file_digests(copy)
    code, _, err = run_cli(capsys, "train", "--timesteps", "512", "--run-dir", copy,
                           *tiny_args())
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    assert "--force" in err
    assert file_digests(copy) == before


def test_corrupt_or_foreign_model_is_an_error(trained_run: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    (copy / "best_model.zip").write_bytes(b"not a zip at all")
    code, _, err = run_cli(capsys, "evaluate", copy)
    assert code == 2 and "not a valid model file" in err and err.count("\n") == 1
    import zipfile

    with zipfile.ZipFile(copy / "model.zip", "w") as z:
        z.writestr("readme.txt", "a zip, but not a model")
    code, _, err = run_cli(capsys, "evaluate", copy, "--model", "last")
    assert code == 2 and "not a stable-baselines3 model" in err


def test_fop_state_lives_in_the_sb3_zip(tmp_path: Path):
    cfg = config.load(overrides=["env.n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32",
                                 "ppo.n_epochs=2"])
    from fop_rl.envs import make_train_env
    from fop_rl.train import build_model

    env = make_train_env(cfg["env"], 0.99, 0, None)
    model = build_model(cfg, env)
    model.learn(256)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy.optimizer, FOP)
    original = model.policy.optimizer.state
    restored = loaded.policy.optimizer.state
    for p, q in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        if "fop_M" in original[p]:
            torch.testing.assert_close(restored[q]["fop_M"], original[p]["fop_M"], rtol=0,
                                       atol=0)
            torch.testing.assert_close(restored[q]["base"]["momentum_buffer"],
                                       original[p]["base"]["momentum_buffer"], rtol=0, atol=0)
    assert any("fop_M" in s for s in original.values())
    env.close()


def test_zoo_style_policy_kwargs_string_builds_fop():
    """rl-baselines3-zoo evaluates policy_kwargs strings with importlib in scope."""
    text = ("dict(optimizer_class=importlib.import_module('fop_rl.optim').FOP, "
            "optimizer_kwargs=dict(momentum=0.9, hyper_lr=1e-5))")
    policy_kwargs = eval(text, {"importlib": importlib})
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=5e-3, n_steps=64, batch_size=32,
                n_epochs=1, policy_kwargs=policy_kwargs, device="cpu")
    model.learn(64)
    assert isinstance(model.policy.optimizer, FOP)
    assert model.policy.optimizer.param_groups[0]["hyper_lr"] == 1e-5


def test_every_option_of_every_command_has_help():
    import argparse

    from fop_rl.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, sub in commands.choices.items()
               for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing


HEAVY = ("torch", "stable_baselines3", "envpool", "Box2D", "optuna", "scipy", "matplotlib")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["sweep", "--help"],
                                  ["train", "--seed", "x"], ["evaluate"]])
def test_help_and_usage_errors_import_no_heavy_library(argv: list[str]):
    # what makes them instant: torch, SB3 and the simulators load where they are used
    code = ("import sys\nfrom fop_rl.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                            timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


def test_run_before_its_first_evaluation_evaluates_its_last_model(tmp_path: Path, capsys):
    run_dir = tmp_path / "short"
    code, _, err = run_cli(capsys, "train", "--timesteps", "256", "--optimizer", "momentum",
                           "--run-dir", run_dir, *tiny_args())  # first evaluation at 512
    assert code == 0, err
    assert not (run_dir / "best_model.zip").exists()
    code, out, err = run_cli(capsys, "evaluate", run_dir, "--episodes", "1", "--json")
    assert code == 0 and json.loads(out)["model"] == "last"
    assert err.startswith("note:") and "has no best model: using its last model" in err
    code, _, err = run_cli(capsys, "evaluate", run_dir, "--model", "best")
    assert code == 2 and "has no best model (best_model.zip" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "render", run_dir, "--out", tmp_path / "short.gif",
                             "--fps", "10", "--scale", "0.25")
    assert code == 0 and "wrote" in out and "has no best model: using its last model" in err


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_name_trains_ppo(name: str):
    from fop_rl.envs import make_train_env
    from fop_rl.modes import to_train_mode
    from fop_rl.train import build_model

    cfg = config.load(overrides=["env.n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32",
                                 "ppo.n_epochs=2", f"training.optimizer={name}"])
    env = make_train_env(cfg["env"], 0.99, 0, None)
    model = build_model(cfg, env)
    to_train_mode(model)  # as train() does: schedule-free optimizers step in train mode only
    model.learn(128)  # one rollout, two epochs of updates
    assert isinstance(model.policy.optimizer, optimizer_class(name))
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    env.close()


@pytest.mark.parametrize(("name", "options"), [("momentum", {"momentum": 0.9}),
                                               ("adam", {"eps": 1e-5})])
def test_torch_optimizers_run_fused_with_torchs_update(name: str, options: dict):
    from fop_rl.optimizers import policy_setup

    _, setup = policy_setup(name, {"lr": 1e-2, **options})
    cls, kwargs = setup["optimizer_class"], setup["optimizer_kwargs"]
    assert kwargs["fused"] is True
    torch.manual_seed(0)
    nets = [torch.nn.Linear(5, 3) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = cls(nets[0].parameters(), lr=1e-2, **kwargs)
    plain = cls(nets[1].parameters(), lr=1e-2, **{k: v for k, v in kwargs.items() if k != "fused"})
    for _ in range(5):
        grads = [torch.randn_like(p) for p in nets[0].parameters()]
        for net, opt in ((nets[0], fused), (nets[1], plain)):
            for p, g in zip(net.parameters(), grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_fop_on_the_policy_only_leaves_the_value_function_to_momentum(tmp_path: Path):
    """fop-policy-momentum learns P for the policy's tensors and none for the value function's,
    and a saved model comes back with both param groups and FOP's state."""
    from fop_rl.envs import make_train_env
    from fop_rl.train import build_model

    cfg = config.load(overrides=["env.n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32",
                                 "ppo.n_epochs=2", "training.optimizer=fop-policy-momentum"])
    env = make_train_env(cfg["env"], 0.99, 0, None)
    model = build_model(cfg, env)
    model.learn(128)
    names = [n for n, _ in model.policy.named_parameters()]
    value = [n for n in names if n.startswith(("mlp_extractor.value_net.", "value_net."))]
    learned = [d.name for d in model.policy.optimizer.diagnostics(model.policy.named_parameters())]
    assert value and sorted(learned) == sorted(set(names) - set(value))
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert [g["structure"] for g in loaded.policy.optimizer.param_groups] == ["full", "none"]
    weight = model.policy.mlp_extractor.policy_net[0].weight
    torch.testing.assert_close(
        loaded.policy.optimizer.state[loaded.policy.mlp_extractor.policy_net[0].weight]["fop_M"],
        model.policy.optimizer.state[weight]["fop_M"], rtol=0, atol=0)
    env.close()


def test_fop_with_p_capped_in_the_policy_only(tmp_path: Path):
    """fop-pcap-momentum bounds P's largest eigenvalue in the policy's layers and leaves the
    value function's free (a hyper step size that makes both run away), also after a reload."""
    from fop_rl.envs import make_train_env
    from fop_rl.train import build_model

    cfg = config.load(overrides=[
        "env.n_envs=2", "ppo.n_steps=64", "ppo.batch_size=32", "ppo.n_epochs=4",
        "training.optimizer=fop-pcap-momentum", "optimizers.fop-pcap-momentum.hyper_lr=0.3",
        "optimizers.fop-pcap-momentum.max_eigenvalue=1.5"])
    env = make_train_env(cfg["env"], 0.99, 0, None)
    model = build_model(cfg, env)
    model.learn(512)
    value_prefixes = ("mlp_extractor.value_net.", "value_net.")
    largest = {d.name: d.eig_max
               for d in model.policy.optimizer.diagnostics(model.policy.named_parameters())}
    policy = [v for n, v in largest.items() if not n.startswith(value_prefixes)]
    value = [v for n, v in largest.items() if n.startswith(value_prefixes)]
    assert len(policy) == 7 and max(policy) <= 1.5 + 1e-4
    assert len(value) == 6 and max(value) > 10
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert [g["max_eigenvalue"] for g in loaded.policy.optimizer.param_groups] == [1.5, None]
    env.close()


def test_fop_reset_learns_p_afresh_at_each_ppo_update(tmp_path: Path, capsys):
    """fop-reset-momentum: at each rollout's end P restarts, so a saved model's FOP has made
    no more hyper-steps than one update has minibatches, and the momentum carries on."""
    run_dir = tmp_path / "reset"
    code, _, err = run_cli(capsys, "train", "--optimizer", "fop-reset-momentum", "--timesteps",
                           "1024", "--run-dir", run_dir, *tiny_args())
    assert code == 0, err
    optimizer = PPO.load(run_dir / "model.zip").policy.optimizer
    steps = [s["fop_hyper_step"] for s in optimizer.state.values() if "fop_M" in s]
    # an update: 2 epochs x 4 minibatches, the first without a hypergradient
    assert steps and set(steps) == {2 * 4 - 1}
    assert optimizer.param_groups[0]["momentum"] == 0.87
