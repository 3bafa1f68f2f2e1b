"""Beyond one machine, as users meet it: a tuning study shared through a real PostgreSQL server
by several `fop-rl tune` processes, rl-baselines3-zoo training with FOP, Ray's failure paths.

The PostgreSQL server (pgserver) is started by these tests and listens on a local socket only.
Run them alone with ``pytest -q tests/test_scaleout.py``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from fop_rl.optim import FOP
from tests.conftest import TINY, kill_tune_mid_trial, run_cli

pgserver = pytest.importorskip("pgserver", reason="pip install 'fop-rl[postgres]'")
ENV = "BipedalWalker-v3"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A PostgreSQL server of this test module's, on a Unix socket in a temporary folder."""
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def database(postgres, request) -> str:
    """A new, empty database of the server, as an Optuna storage URL."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[-40:]
    postgres.psql(f"CREATE DATABASE {name};")
    socket_dir = postgres.get_uri().split("host=")[1]
    return f"postgresql+psycopg2://postgres@/{name}?host={socket_dir}"


def tune_argv(runs: Path, storage: str, trials: int, *extra: str,
              timesteps: int = 512) -> list[str]:
    argv = [sys.executable, "-m", "fop_rl.cli", "tune", "--optimizer", "momentum", "--trials",
            str(trials), "--timesteps", str(timesteps), "--seeds", "100", "--jobs", "1",
            "--runs-dir", str(runs), "--storage", storage, "--study-name", "shared",
            "--pruner", "none"]
    for item in TINY:
        argv += ["--set", item]
    return [*argv, *extra]


def trials_csv(runs: Path) -> list[dict[str, str]]:
    with open(runs / "tune" / ENV / "momentum" / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("processes", [2, 3])
def test_tune_processes_started_together_share_one_study(database: str, tmp_path: Path,
                                                          processes: int):
    # as on several machines: one fresh database, a runs folder each, all started at once
    trials = 3
    procs = [subprocess.Popen(tune_argv(tmp_path / f"machine-{i}", database, trials),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(processes)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * processes, "\n".join(outputs)
    study = optuna.load_study(study_name="shared", storage=database)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == trials  # none lost, none run twice
    surplus = [t for t in study.trials if t.state.name == "FAIL"]
    assert all(t.user_attrs["fail_reason"].startswith("surplus") for t in surplus)
    assert all(not t.params for t in surplus)  # they never trained
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    for i in range(processes):
        runs = tmp_path / f"machine-{i}"
        rows = trials_csv(runs)
        assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name)
                                                                  for t in study.trials]
        chosen = yaml.safe_load((runs / "tune" / ENV / "momentum" / "best.yaml").read_text())
        assert chosen["optimizers"]["momentum"]["lr"] == pytest.approx(best.params["lr"])


def test_a_killed_tune_process_is_failed_by_its_heartbeat(database: str, tmp_path: Path):
    kill_tune_mid_trial(tune_argv(tmp_path / "a", database, 1, "--heartbeat", "1",
                                  timesteps=8192), tmp_path / "a" / "tune" / ENV / "momentum")
    study = optuna.load_study(study_name="shared", storage=database)
    (orphan,) = study.trials
    assert orphan.state.name == "RUNNING"
    # as if it had run on another machine, whose processes this one cannot see
    study._storage.set_trial_user_attr(orphan._trial_id, "host", "another-machine")
    time.sleep(4)  # more than 3 missed beats of 1 s
    result = subprocess.run(tune_argv(tmp_path / "b", database, 1, "--heartbeat", "1"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trial 0 was left running by a tune process that died" in result.stdout
    rows = trials_csv(tmp_path / "b")
    assert [r["state"] for r in rows] == ["FAIL", "COMPLETE"]
    assert "stopped beating" in rows[0]["fail_reason"]
    assert "another-machine" in rows[0]["fail_reason"]


@pytest.mark.parametrize(("storage", "message"), [
    ("not a url", "Could not parse SQLAlchemy URL"),
    ("postgresql+pg8000://postgres@/x?unix_sock=/tmp/none", "driver is not installed"),
    ("postgresql+psycopg2://postgres:secret@127.0.0.1:1/x", "cannot open study"),
    ("postgresql+psycopg2://postgres@/x?host=/nonexistent-socket-dir", "cannot open study"),
])
def test_bad_storage_is_one_error_line(storage: str, message: str, tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, *tune_argv(runs, storage, 1)[3:])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "secret" not in err
    assert not runs.exists()


def test_rl_zoo3_trains_ppo_with_fop_from_the_readme_string(tmp_path: Path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("policy_kwargs: \"dict("))
    (tmp_path / "ppo.yml").write_text(
        "Pendulum-v1:\n  n_envs: 2\n  n_timesteps: 2048\n  policy: 'MlpPolicy'\n"
        "  n_steps: 256\n  batch_size: 64\n  n_epochs: 2\n  " + line + "\n")
    result = subprocess.run([sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env",
                             "Pendulum-v1", "-conf", "ppo.yml", "-f", "logs", "--seed", "0",
                             "--eval-freq", "-1"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    from stable_baselines3 import PPO

    model = PPO.load(tmp_path / "logs" / "ppo" / "Pendulum-v1_1" / "Pendulum-v1.zip",
                     device="cpu")
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, FOP)
    assert optimizer.defaults["hyper_lr"] == 1e-4 and optimizer.defaults["momentum"] == 0.9
    assert optimizer.diagnostics(model.policy.named_parameters())  # P learned and restored


def test_ray_address_where_no_cluster_answers(tmp_path: Path, capsys, monkeypatch):
    ray = pytest.importorskip("ray")

    def refuse(*args, **kwargs):  # what ray.init raises once its own retries are spent
        raise ConnectionError("Failed to connect to Ray cluster at 10.1.2.3:6379.")

    monkeypatch.setattr(ray, "init", refuse)
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "sweep", "--optimizers", "momentum", "--seeds", "0",
                           "--runs-dir", runs, "--backend", "ray", "--address", "10.1.2.3:6379")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --backend ray: cannot start or reach a Ray cluster at "
                          "--address 10.1.2.3:6379 (Failed to connect")
    assert "ray start --head" in err
    assert not runs.exists()


def test_ray_not_installed(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "sweep", "--optimizers", "momentum", "--seeds", "0",
                           "--runs-dir", runs, "--backend", "ray", "--address", "10.1.2.3:6379")
    assert (code, err) == (2, "error: --backend ray needs Ray: pip install 'fop-rl[ray]'\n")
    assert not runs.exists()
