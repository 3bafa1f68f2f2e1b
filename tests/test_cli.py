"""The command line's own behaviour: terrains and curricula given on it, what it says while a
run trains, and where render writes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from fop_rl import __version__
from fop_rl.bar import progress_bar
from fop_rl.cli import main
from fop_rl.cli.display import sweep_line
from tests.conftest import run_cli, tiny_args


def test_evaluate_and_render_take_a_custom_terrain(trained_run: Path, tmp_path: Path, capsys):
    custom = ["--terrain", "stumps", "--set", "env.terrain.stump_height=[0.25,0.5]"]
    code, out, err = run_cli(capsys, "evaluate", trained_run, "--episodes", "1", *custom)
    assert code == 0, err
    assert "1 episode of fop_rl/BipedalWalkerTerrain-v0 on terrain custom-" in out
    code, out, err = run_cli(capsys, "evaluate", trained_run, "--episodes", "1", "--terrain",
                             "pits")
    assert code == 0 and "on terrain pits (gymnasium, reset seeds 1000-1000)" in out, err
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(trained_run, copy)
    for argv in (["--terrain", "stairs-low"], custom):
        code, out, err = run_cli(capsys, "render", copy, "--fps", "5", "--scale", "0.2", *argv)
        assert code == 0, err
    names = sorted(p.name for p in copy.glob("rollout*.mp4"))
    assert names[-1] == "rollout-stairs-low.mp4" and names[0].startswith("rollout-custom-")


# fop-rl ARGV, then which of the heavy packages it imported
CLI_AND_HEAVY_IMPORTS = ("import sys; from fop_rl.cli import main; code = main(sys.argv[1:]); "
                         "print([m for m in ('torch', 'stable_baselines3') if m in sys.modules]); "
                         "sys.exit(code)")


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--terrain", "nosuch"], "error: --terrain: unknown terrain preset 'nosuch'"),
    (["evaluate", "RUN", "--set", "env.terrain.nope=1"],
     "error: --set: unknown terrain parameter 'nope'"),
    (["evaluate", "RUN", "--set", "ppo.gamma=0.9"], "evaluate takes env.terrain.<parameter>"),
    (["render", "RUN", "--terrain", "nosuch"], "error: --terrain: unknown terrain preset"),
    (["train", "--curriculum", "missing.yaml"], "error: --curriculum missing.yaml: cannot read"),
    (["train", "--curriculum", "CURRICULUM", "--terrain", "pits"], "leave out --terrain"),
    (["train", "--init-from", "no/such/run"], "error: --init-from: run directory no/such/run"),
])
def test_terrain_curriculum_and_source_errors_name_the_flag(argv, message, trained_run: Path,
                                                             tmp_path: Path):
    bad = tmp_path / "curriculum.yaml"
    bad.write_text("- {terrain: stumps-low}\n- {terrain: flat}\n")  # the first has no rule
    argv = [str(trained_run) if a == "RUN" else str(bad) if a == "CURRICULUM" else a
            for a in argv]
    done = subprocess.run([sys.executable, "-c", CLI_AND_HEAVY_IMPORTS, *argv],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    if argv[0] == "train" and "--init-from" not in argv:  # answered before torch or SB3 is
        assert done.stdout == "[]\n"  # imported, as any usage error (0.4 s; 4 s with them)


def test_a_curriculum_file_is_checked_and_trains(tmp_path: Path, capsys):
    stages = tmp_path / "stages.yaml"
    stages.write_text("- {terrain: stumps, steps: 1}\n")  # not the last stage's rule
    code, _, err = run_cli(capsys, "train", "--curriculum", stages, "--run-dir", tmp_path / "x")
    assert code == 2 and "is the last stage, which runs to the budget" in err
    stages.write_text("- {terrain: stumps-low, steps: 256}\n- {terrain: flat}\n")
    code, out, err = run_cli(capsys, "train", "--curriculum", stages, "--optimizer", "momentum",
                             "--timesteps", "512", "--run-dir", tmp_path / "run", *tiny_args())
    assert code == 0, err
    assert "curriculum: stage 1 (flat) from step 256" in err
    assert "512/512 steps" in out and "steps/s now, elapsed" in out and "ETA" in out


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"fop-rl {__version__}\n"


def test_progress_reads_at_80_columns_and_waits_for_a_rate(capsys):
    console = Console(width=80, file=io.StringIO(), color_system=None)
    bar = progress_bar(console)
    bar.add_task("BipedalWalkerHardcore-v3 adam seed 10", total=20_000_000, completed=1_352_000,
                 speed="3632 steps/s", reward="-29.4")
    console.print(bar.get_renderable())
    text = console.file.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    # steps, total, speed, evaluation and time remaining, whole; no rate yet: no ETA
    assert "1352000/20000000 3632 steps/s eval -29.4 -:--:--" in text
    assert sweep_line({"done": 3, "skipped": 0, "running": 1, "failed": 0, "pending": 0,
                       "steps_per_s": 900.0, "eta_s": 0.0}).endswith("| ETA finishing")


def test_the_first_progress_line_of_a_run_has_no_eta(tmp_path: Path, capsys):
    code, out, err = run_cli(capsys, "train", "--optimizer", "momentum", "--timesteps", "1024",
                             "--run-dir", tmp_path / "run", *tiny_args())
    assert code == 0, err
    lines = [line for line in out.splitlines() if "steps/s now" in line]
    assert lines[0].startswith("512/1024 steps") and ", ETA -, " in lines[0]
    assert ", ETA -, " not in lines[1]


REPO = Path(__file__).resolve().parents[1]


def _tour() -> list[list[str]]:
    """README's quick tour: each fop-rl command's arguments (comments, continuation lines and
    optional ``[...]`` parts taken out; RUN left as the reader's run directory)."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    block = readme.split("## A quick tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = re.sub(r"\\\n\s*", " ", block).splitlines()
    commands = [re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]) for line in lines]
    return [shlex.split(c)[1:] for c in commands if c.startswith("fop-rl ")]


def test_readme_tour_parses_and_names_files_that_exist():
    """Every command of README's tour is one the parser takes, and every file or folder it
    names (configs, curricula, committed agents) is in the repository."""
    from fop_rl.cli import build_parser

    tour = _tour()
    assert len(tour) >= 15
    for argv in tour:
        build_parser().parse_args(argv)  # a UsageError names the command
        for word in argv:
            value = word.split("=", 1)[-1]
            if value.startswith(("configs/", "docs/")):
                assert (REPO / value).exists(), (argv, value)


def test_readme_links_point_to_files_that_exist():
    import re

    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert links
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing
