"""Reference runs beside a user's: `fop-rl report RUNS --references SET` on real sweeps; refused
where the task, the budget or the evaluation differs; a reference seed re-run reproduces its
record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fop_rl import references
from fop_rl.cli import main
from tests.conftest import TINY, run_cli

ENV = "BipedalWalker-v3"
MANIFEST = """study: a test's sweep
command: fop-rl sweep --optimizers momentum adam --seeds 0-1 --timesteps 512
baseline: adam
"""


def sweep(runs: Path, optimizers: list[str], seeds: str, *extra: str,
          timesteps: int = 512) -> None:
    args = ["sweep", "--optimizers", *optimizers, "--seeds", seeds, "--timesteps", timesteps,
            "--jobs", "2", "--runs-dir", runs, *extra]
    for item in TINY:
        args += ["--set", item]
    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    """A reference set made as a study makes one: a sweep's runs and a reference.yaml."""
    folder = tmp_path_factory.mktemp("references") / "refs"
    sweep(folder, ["momentum", "adam"], "0-1")
    (folder / references.MANIFEST).write_text(MANIFEST)
    return folder


def test_a_users_runs_are_reported_beside_the_references(refs: Path, tmp_path: Path, capsys):
    mine = tmp_path / "mine"
    sweep(mine, ["torch.optim:AdamW"], "0-1", "--set", "ppo.gae_lambda=0.9")
    out = tmp_path / "report"
    code, printed, err = run_cli(capsys, "report", mine, "--references", refs, "--out", out,
                                 "--reps", "200")
    assert code == 0, err
    text = (out / "report.md").read_text()
    assert "References: `refs:*`, 4 runs from a test's sweep" in text
    assert "ppo.gae_lambda: 0.9 (references: 0.95)" in text
    assert "P(improvement) vs refs:adam" in text  # the references' baseline by default
    summary = json.loads((out / "report.json").read_text())[ENV]
    assert set(summary) == {"torch.optim.AdamW", "refs:momentum", "refs:adam"}
    assert summary["torch.optim.AdamW"]["seeds"] == 2 and summary["refs:adam"]["seeds"] == 2
    assert "refs:adam" in summary["torch.optim.AdamW"]["prob_improvement"]
    assert "# Report" in printed


def test_a_comparison_on_another_budget_is_refused(refs: Path, tmp_path: Path, capsys):
    longer = tmp_path / "longer"
    sweep(longer, ["momentum"], "0", timesteps=1024)
    out = tmp_path / "report"
    code, _, err = run_cli(capsys, "report", longer, "--references", refs, "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert "cannot be compared with the refs references: training.total_timesteps: 1024 " \
           "(references: 512)" in err
    assert not out.exists()


def test_unknown_references_are_one_error_line(tmp_path: Path, capsys):
    (tmp_path / "runs").mkdir()
    code, _, err = run_cli(capsys, "report", tmp_path / "runs", "--references", "nowhere")
    assert code == 2 and err.count("\n") == 1
    assert "--references nowhere: neither a packaged set (walker) nor a folder" in err
    assert "walker" in references.packaged()


def test_a_reference_seed_rerun_reproduces_its_record(refs: Path, tmp_path: Path, capsys):
    again = tmp_path / "again"
    sweep(again, ["adam"], "0")
    for name in ("timesteps", "results", "ep_lengths"):
        recorded = np.load(refs / ENV / "adam" / "seed-0" / "evaluations.npz")[name]
        assert np.array_equal(np.load(again / ENV / "adam" / "seed-0" / "evaluations.npz")[name],
                              recorded), name
    final = [json.loads((root / ENV / "adam" / "seed-0" / "final_evaluation.json").read_text())
             for root in (refs, again)]
    assert final[0]["returns"] == final[1]["returns"]
