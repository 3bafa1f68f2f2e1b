"""fop-rl toy: SGD, SGD+FOP and Adam on 2-D test functions (the paper's figure 1)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli

ENV = "BipedalWalker-v3"


def test_toy_booth_fop_beats_sgd_at_the_same_lr(tmp_path: Path, capsys):
    out = tmp_path / "booth.png"
    code, stdout, _ = run_cli(capsys, "toy", "--problem", "booth", "--out", out)
    assert code == 0
    iterations = dict(re.findall(r"^(\S+)\s+loss < 1e-6 after (\d+) iterations", stdout, re.M))
    assert set(iterations) == {"SGD", "SGD+FOP", "Adam"}
    assert int(iterations["SGD+FOP"]) < int(iterations["SGD"])
    assert out.stat().st_size > 10_000
