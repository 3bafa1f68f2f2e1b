"""Statistics against independent computations; the report end to end on SB3-format files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fop_rl import stats
from tests.conftest import run_cli


def numpy_percentile_bootstrap(x: np.ndarray, level: float, reps: int, seed: int):
    """A plain percentile bootstrap of the median, written independently of fop_rl."""
    rng = np.random.default_rng(seed)
    resampled = np.median(x[rng.integers(0, len(x), size=(reps, len(x)))], axis=1)
    tail = (1 - level) / 2 * 100
    return np.percentile(resampled, [tail, 100 - tail])


def test_median_ci_agrees_with_scipy_and_a_plain_bootstrap():
    rng = np.random.default_rng(1)
    seeds = rng.normal(100.0, 30.0, size=(10, 3))
    median, low, high = stats.median_ci(seeds, 0.95, reps=20000, seed=3)
    np.testing.assert_allclose(median, np.median(seeds, axis=0))
    for col in range(3):
        ref = scipy_stats.bootstrap((seeds[:, col],), np.median, confidence_level=0.95,
                                    n_resamples=20000, method="percentile",
                                    rng=np.random.default_rng(11)).confidence_interval
        plain = numpy_percentile_bootstrap(seeds[:, col], 0.95, 20000, seed=5)
        spread = seeds[:, col].std()
        for ours, theirs in ((low[col], ref.low), (high[col], ref.high),
                             (low[col], plain[0]), (high[col], plain[1])):
            assert abs(ours - theirs) < 0.1 * spread
        assert low[col] <= median[col] <= high[col]


def test_identical_seeds_give_zero_width_intervals():
    seeds = np.full((5, 4), 7.5)
    median, low, high = stats.median_ci(seeds, 0.95, reps=500)
    np.testing.assert_array_equal(low, median)
    np.testing.assert_array_equal(high, median)
    iqm, i_low, i_high = stats.iqm_ci(seeds, 0.95, reps=200)
    np.testing.assert_allclose([iqm, i_low, i_high], 7.5)


def test_iqm_is_the_interquartile_mean():
    values = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [100.0]])
    iqm, low, high = stats.iqm_ci(values, 0.95, reps=300)
    assert iqm[0] == pytest.approx(scipy_stats.trim_mean(values[:, 0], 0.25))
    assert low[0] <= iqm[0] <= high[0]


def test_probability_of_improvement_of_separated_groups():
    high, low = np.arange(10.0, 15.0), np.arange(0.0, 5.0)
    assert stats.probability_of_improvement(high, low, 0.95, 300) == (1.0, 1.0, 1.0)
    assert stats.probability_of_improvement(low, high, 0.95, 300) == (0.0, 0.0, 0.0)
    tie = stats.probability_of_improvement(low, low, 0.95, 300)
    assert tie[0] == pytest.approx(0.5)
    u = scipy_stats.mannwhitneyu(high[:3], low[1:]).statistic / (3 * 4)
    assert stats.probability_of_improvement(high[:3], low[1:], 0.95, 300)[0] == pytest.approx(u)


def test_resample_statistics_equal_rliables_and_scipys():
    from rliable import library as rly
    from rliable import metrics

    rng = np.random.default_rng(4)
    for n, m in ((10, 10), (7, 12), (5, 4)):
        x = rng.normal(0, 1, (n, 1)).round(1)  # rounded: ties happen
        y = rng.normal(0.3, 1, (m, 1)).round(1)
        assert stats.improvement(x, y) == pytest.approx(
            metrics.probability_of_improvement(x, y), abs=1e-12)
        columns = rng.normal(0, 1, (n, 6))
        np.testing.assert_allclose(stats.interquartile_mean(columns),
                                   scipy_stats.trim_mean(columns, 0.25, axis=0), atol=1e-12)
        # the same bootstrap, so the same CI as rliable's own metric gives
        np.random.seed(2)
        _, reference = rly.get_interval_estimates({"p": (x, y)},
                                                  metrics.probability_of_improvement, reps=300)
        _, low, high = stats.probability_of_improvement(x[:, 0], y[:, 0], 0.95, 300, seed=2)
        assert [low, high] == pytest.approx(reference["p"][:, 0].tolist(), abs=1e-12)


def test_best_so_far_grid_and_threshold():
    np.testing.assert_array_equal(stats.best_so_far(np.array([1.0, 3.0, 2.0, 5.0])),
                                  [1, 3, 3, 5])
    grid, values = stats.on_grid([np.array([10, 20, 30]), np.array([10, 25])],
                                 [np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0])])
    np.testing.assert_array_equal(grid, [10, 20, 25])
    np.testing.assert_array_equal(values, [[1, 2, 2], [5, 5, 6]])
    assert stats.steps_to_threshold(grid, np.array([0.0, 1.0, 2.0]), 1.0) == 20
    assert stats.steps_to_threshold(grid, np.array([0.0, 1.0, 2.0]), 9.0) is None


def write_run(root: Path, env: str, label: str, seed: int, returns: np.ndarray,
              every: int = 1000) -> Path:
    """An evaluations.npz exactly as SB3's EvalCallback writes it."""
    folder = root / env / label / f"seed-{seed}"
    folder.mkdir(parents=True)
    n = len(returns)
    results = np.repeat(returns[:, None], 3, axis=1) + np.array([-1.0, 0.0, 1.0])
    np.savez(folder / "evaluations.npz", timesteps=np.arange(1, n + 1) * every,
             results=results, ep_lengths=np.full((n, 3), 100))
    return folder


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for seed in range(5):
        base = np.linspace(-100, 200, 12) + rng.normal(0, 10, 12)
        write_run(root, "BipedalWalker-v3", "fop-momentum", seed, base + 50)
        write_run(root, "BipedalWalker-v3", "momentum", seed, base)
    write_run(root, "BipedalWalker-v3", "momentum", 5, np.linspace(-100, 150, 9))  # ragged
    for seed in range(2):  # too few seeds
        write_run(root, "BipedalWalkerHardcore-v3", "adam", seed, np.linspace(-120, -50, 6))
    broken = root / "BipedalWalker-v3" / "adam" / "seed-0"
    broken.mkdir(parents=True)
    (broken / "evaluations.npz").write_bytes(b"corrupt")
    empty = root / "BipedalWalker-v3" / "adam" / "seed-1"
    empty.mkdir(parents=True)
    np.savez(empty / "evaluations.npz", timesteps=np.zeros(0), results=np.zeros((0, 3)),
             ep_lengths=np.zeros((0, 3)))
    return root


def test_report_end_to_end(runs_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--reps", "300",
                                "--threshold", "100")
    assert code == 0, err
    assert "adam/seed-0/evaluations.npz" in err and "adam/seed-1/evaluations.npz" in err
    assert "BipedalWalkerHardcore-v3/adam: only 2 seed(s)" in err
    assert "BipedalWalker-v3/momentum: seeds end at different steps" in err
    for name in ("report.md", "report.json", "curves.csv", "BipedalWalker-v3.png",
                 "BipedalWalkerHardcore-v3.png", "BipedalWalker-v3-evaluations.png",
                 "BipedalWalkerHardcore-v3-evaluations.png"):
        assert (out / name).exists(), name

    summary = json.loads((out / "report.json").read_text())
    assert set(summary) == {"BipedalWalker-v3", "BipedalWalkerHardcore-v3"}
    assert "adam" not in summary["BipedalWalker-v3"]  # unreadable files are never averaged in
    fop = summary["BipedalWalker-v3"]["fop-momentum"]
    assert set(fop) == {"seeds", "final_step", "final", "prob_improvement", "steps_to_threshold",
                        "auc"}
    assert set(fop["final"]) == {"median", "median_ci", "iqm", "iqm_ci", "mean", "per_seed"}
    mom = summary["BipedalWalker-v3"]["momentum"]
    assert fop["seeds"] == 5 and mom["seeds"] == 6
    assert mom["final_step"] == 9000  # the ragged seed ends there
    assert fop["final_step"] == 12000
    assert fop["prob_improvement"]["momentum"]["value"] > 0.5
    # the reverse direction is the same bootstrap, mirrored (ties count half)
    forward, backward = fop["prob_improvement"]["momentum"], mom["prob_improvement"]["fop-momentum"]
    assert backward["value"] == pytest.approx(1 - forward["value"])
    assert backward["ci"] == pytest.approx([1 - forward["ci"][1], 1 - forward["ci"][0]])
    low, high = fop["final"]["median_ci"]
    assert low <= fop["final"]["median"] <= high
    assert isinstance(fop["steps_to_threshold"], int)

    # the final median is the median of the seeds' best-so-far means at final_step
    finals = []
    for seed in range(5):
        with np.load(runs_dir / "BipedalWalker-v3" / "fop-momentum" / f"seed-{seed}" /
                     "evaluations.npz") as ev:
            finals.append(np.maximum.accumulate(ev["results"].mean(axis=1))[-1])
    assert fop["final"]["median"] == pytest.approx(np.median(finals))
    assert fop["final"]["mean"] == pytest.approx(np.mean(finals))
    assert list(fop["final"]["per_seed"]) == ["0", "1", "2", "3", "4"]
    assert list(fop["final"]["per_seed"].values()) == pytest.approx(finals)
    aucs = []  # the mean of each seed's best-so-far curve over its 12 evaluations
    for seed in range(5):
        with np.load(runs_dir / "BipedalWalker-v3" / "fop-momentum" / f"seed-{seed}" /
                     "evaluations.npz") as ev:
            aucs.append(np.maximum.accumulate(ev["results"].mean(axis=1)).mean())
    assert list(fop["auc"]["per_seed"].values()) == pytest.approx(aucs)
    assert fop["auc"]["median"] == pytest.approx(np.median(aucs))
    assert fop["auc"]["prob_improvement"]["momentum"]["value"] > 0.5

    with open(out / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["env", "label", "step", "median", "ci_low", "ci_high", "iqm",
                             "iqm_low", "iqm_high"]
    fop_rows = [r for r in rows if r["label"] == "fop-momentum"]
    assert len(fop_rows) == 12 and float(fop_rows[-1]["median"]) == pytest.approx(
        np.median(finals), abs=1e-3)
    markdown = (out / "report.md").read_text()
    assert "| fop-momentum | 5 |" in markdown
    # by default against momentum and Adam, where a group has them (the walker's Adam runs
    # are unreadable; the hard terrain has only Adam)
    walker, hardcore = markdown.split("## BipedalWalkerHardcore-v3")
    assert "P(improvement) vs momentum |" in walker and "vs adam" not in walker
    assert "P(improvement) vs adam |" in hardcore and "vs momentum" not in hardcore


def test_evaluation_curves_are_the_evaluations_themselves(tmp_path: Path):
    from fop_rl.report import aggregate, find_runs

    raw = [np.array([0.0, 100.0, 200.0, 50.0]) + seed for seed in range(5)]  # a policy lost
    for seed, returns in enumerate(raw):
        write_run(tmp_path, "BipedalWalker-v3", "fop-momentum", seed, returns)
    groups, _ = aggregate(find_runs(tmp_path)[0], 0.95, reps=200)
    fop = groups["BipedalWalker-v3"]["fop-momentum"]
    np.testing.assert_allclose(fop.eval_median, [2.0, 102.0, 202.0, 52.0])
    np.testing.assert_allclose(fop.median, [2.0, 102.0, 202.0, 202.0])  # best so far
    assert np.all(fop.eval_low <= fop.eval_median) and np.all(fop.eval_median <= fop.eval_high)


def test_figures_of_one_evaluation_mark_it_and_titles_say_which_figure(tmp_path: Path):
    from fop_rl.report import aggregate, figure, find_runs

    for seed in range(3):
        write_run(tmp_path, "BipedalWalker-v3", "momentum", seed, np.array([-90.0 - seed]))
    groups, _ = aggregate(find_runs(tmp_path)[0], 0.95, reps=200)
    labels = groups["BipedalWalker-v3"]
    best, evaluations = (figure("BipedalWalker-v3", labels, 0.95, None, evaluations=e).axes[0]
                         for e in (False, True))
    assert best.get_title() == "BipedalWalker-v3: best-so-far evaluation return"
    assert evaluations.get_title() == "BipedalWalker-v3: evaluation return"
    for ax in (best, evaluations):
        assert ax.lines[0].get_marker() == "o" and len(ax.containers) == 1  # point, error bar
        assert ax.get_xlabel() and "bootstrap CI" in ax.get_ylabel()


def test_report_draws_a_reference_line(runs_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--reps", "100",
                           "--reference", "common start=-60.5")
    assert code == 0, err
    with_line = (out / "BipedalWalker-v3.png").read_bytes()
    run_cli(capsys, "report", runs_dir, "--out", tmp_path / "plain", "--reps", "100")
    assert with_line != (tmp_path / "plain" / "BipedalWalker-v3.png").read_bytes()
    code, _, err = run_cli(capsys, "report", runs_dir, "--reference", "-60")
    assert code == 2 and "expected NAME=RETURN" in err and err.count("\n") == 1


def test_report_is_reproducible(runs_dir: Path, tmp_path: Path, capsys):
    for name in ("a", "b"):
        assert run_cli(capsys, "report", runs_dir, "--out", tmp_path / name, "--reps",
                       "200")[0] == 0
    assert (tmp_path / "a" / "report.json").read_text() == \
        (tmp_path / "b" / "report.json").read_text()


def test_report_of_nothing_is_an_error(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "report", tmp_path / "empty")
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    code, _, err = run_cli(capsys, "report", tmp_path / "missing")
    assert code == 2 and "does not exist" in err


def test_report_follows_linked_runs(runs_dir: Path, tmp_path: Path, capsys):
    """A comparison assembled from links: the label is the link's name; a cycle ends."""
    side = tmp_path / "side" / "BipedalWalker-v3"
    side.mkdir(parents=True)
    (side / "baseline").symlink_to(runs_dir / "BipedalWalker-v3" / "momentum")
    (side / "variant").symlink_to(runs_dir / "BipedalWalker-v3" / "fop-momentum")
    (side.parent / "again").symlink_to(side.parent)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "report", tmp_path / "side", "--out", out, "--reps", "200",
                           "--baseline", "variant", "--baseline", "momentum")
    assert code == 2 and err.count("\n") == 1 and not out.exists()
    assert err.startswith("error: --baseline momentum: no such label")
    assert "baseline, variant" in err
    code, _, err = run_cli(capsys, "report", tmp_path / "side", "--out", out, "--reps", "200",
                           "--baseline", "variant", "--baseline", "baseline")
    assert code == 0, err
    summary = json.loads((out / "report.json").read_text())["BipedalWalker-v3"]
    assert set(summary) == {"baseline", "variant"}
    lines = (out / "report.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| label | seeds"))
    assert "| P(improvement) vs variant | P(improvement) vs baseline | AUC" in header
    row = next(line for line in lines if line.startswith("| variant | 5 |"))
    p = summary["variant"]["prob_improvement"]["baseline"]
    assert f"| - | {p['value']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}] |" in row
    assert summary["variant"]["seeds"] == 5 and summary["baseline"]["seeds"] == 6


def write_final(folder: Path, returns: list[float]) -> None:
    """A final_evaluation.json as `fop-rl evaluate --save` writes it (the fields report reads)."""
    (folder / "final_evaluation.json").write_text(json.dumps(
        {"model": "last", "episodes": len(returns), "mean": float(np.mean(returns)),
         "returns": returns}))


def test_report_adds_the_final_models_evaluations(runs_dir: Path, tmp_path: Path, capsys):
    walker = runs_dir / "BipedalWalker-v3"
    means = {"fop-momentum": [10.0, 20.0, 30.0, 40.0, 50.0],
             "momentum": [60.0, 70.0, 80.0, 90.0, 100.0, 110.0]}
    for label, values in means.items():
        for seed, mean in enumerate(values):
            write_final(walker / label / f"seed-{seed}", [mean - 1.0, mean + 1.0])
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--reps", "300")
    assert code == 0, err
    summary = json.loads((out / "report.json").read_text())["BipedalWalker-v3"]
    fop = summary["fop-momentum"]["final_eval"]
    assert fop["episodes"] == 2 and fop["median"] == pytest.approx(30.0)
    assert fop["per_seed"] == {str(s): v for s, v in enumerate(means["fop-momentum"])}
    assert fop["prob_improvement"]["momentum"]["value"] == 0.0  # every seed below
    # the best-so-far metric says the opposite here: both are reported, side by side
    assert summary["fop-momentum"]["prob_improvement"]["momentum"]["value"] > 0.5
    assert summary["momentum"]["final_eval"]["median"] == pytest.approx(85.0)
    markdown = (out / "report.md").read_text()
    assert "Final model" in markdown and "| fop-momentum | 2 | 30.0 [" in markdown

    (walker / "momentum" / "seed-5" / "final_evaluation.json").unlink()  # one seed without
    code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--reps", "300")
    assert code == 0 and "momentum: 5 of 6 seeds have a final evaluation" in err
    summary = json.loads((out / "report.json").read_text())["BipedalWalker-v3"]
    assert "final_eval" not in summary["momentum"]
    assert summary["fop-momentum"]["final_eval"]["prob_improvement"] == {}


def test_report_states_wall_times_and_versions(runs_dir: Path, tmp_path: Path, capsys):
    from fop_rl.report import find_runs

    walker = runs_dir / "BipedalWalker-v3"
    versions = [{"python": "3.11.7", "torch": "2.13.0+cpu"}, {"python": "3.11.7", "torch": "x"}]
    for seed, wall in enumerate([600.0, 1200.0, 1800.0]):  # seeds 3 and 4 have no run.json
        (walker / "fop-momentum" / f"seed-{seed}" / "run.json").write_text(json.dumps(
            {"status": "complete", "wall_time_s": wall, "versions": versions[seed == 2]}))
    complete = {run.seed for run in find_runs(runs_dir)[0]
                if run.label == "fop-momentum" and run.complete}
    assert complete == {0, 1, 2}
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--reps", "100")
    assert code == 0, err
    summary = json.loads((out / "report.json").read_text())["BipedalWalker-v3"]
    assert summary["fop-momentum"]["wall_time_s"] == {"runs": 3, "median": 1200.0,
                                                      "total": 3600.0}
    assert summary["fop-momentum"]["versions"] == versions  # each distinct set once
    assert "wall_time_s" not in summary["momentum"] and "versions" not in summary["momentum"]
    markdown = (out / "report.md").read_text()
    assert "| fop-momentum | 3 | 20.0 min | 1.00 h |" in markdown
    assert "Versions: python 3.11.7, torch 2.13.0+cpu" in markdown


def test_report_of_some_seeds(runs_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--reps", "100",
                           "--seeds", "0-2")
    assert code == 0, err
    assert "seeds end at different steps" not in err  # momentum's ragged seed 5 is left out
    summary = json.loads((out / "report.json").read_text())["BipedalWalker-v3"]
    assert list(summary["momentum"]["final"]["per_seed"]) == ["0", "1", "2"]
    assert summary["momentum"]["final_step"] == 12000
    for bad, message in (("7", "no <env>/<label>/seed-<n>/evaluations.npz of seeds [7]"),
                         ("x", "--seeds 'x': expected numbers")):
        code, _, err = run_cli(capsys, "report", runs_dir, "--out", out, "--seeds", bad)
        assert code == 2 and message in err and err.count("\n") == 1, err
