"""The mastery screen's deployment rule (README.md), applied to finished runs:

    python docs/results/hardcore/mastery/deploy.py RUN [RUN ...]

RUN: a finished run of the screen, RUNS_DIR/ARM/BipedalWalkerHardcore-v3/adam/seed-S, with its
checkpoints.
For each run: the candidates are the last model and the checkpoints at the 5 steps whose
evaluation (10 episodes) is highest among the steps that have a checkpoint (ties: the later
step); each plays the 100 selection episodes (gymnasium's BipedalWalkerHardcore-v3, reset seeds
2000-2099, statistics frozen); the highest mean is deployed; the deployed model and the last
model are then scored on the leaderboard's episodes (reset seeds 1000-1099). Writes
records/ARM/BipedalWalkerHardcore-v3/adam/seed-S/deployed.json, after every evaluation (a
killed selection goes on where it stopped; a finished one is skipped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fop_rl.evaluate import evaluate
from fop_rl.rundir import atomic_write_text

HERE = Path(__file__).parent
ENV_ID = "BipedalWalkerHardcore-v3"
SELECTION_SEED, SCORE_SEED, EPISODES, TOP = 2000, 1000, 100, 5


def candidates(run: Path) -> list[dict]:
    """The last model, then the checkpoints at the TOP highest evaluations."""
    data = np.load(run / "evaluations.npz")
    saved = {int(p.name.removeprefix("step-"))
             for p in (run / "checkpoints").glob("step-*") if p.is_dir()}
    scored = [(float(np.mean(r)), int(t))
              for t, r in zip(data["timesteps"], data["results"], strict=True) if int(t) in saved]
    best = sorted(scored, key=lambda pair: (pair[0], pair[1]), reverse=True)[:TOP]
    return [{"model": "last"}] + [{"model": f"step-{t}", "evaluation": m} for m, t in best]


def played(run: Path, model: str, seed: int) -> dict:
    result = evaluate(run, EPISODES, model, backend="gymnasium", env_id=ENV_ID, seed=seed)
    return {key: result[key] for key in ("mean", "ci", "median", "ends", "falls_at",
                                         "returns")}


def select(run: Path, record: Path) -> dict:
    out = record / "deployed.json"
    state = json.loads(out.read_text()) if out.exists() else {
        "run": str(run), "selection_seeds": [SELECTION_SEED, SELECTION_SEED + EPISODES - 1],
        "score_seeds": [SCORE_SEED, SCORE_SEED + EPISODES - 1], "candidates": candidates(run),
        "scores": {}}

    def save() -> None:
        record.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(state, indent=1) + "\n")

    for candidate in state["candidates"]:
        if "selection" not in candidate:
            candidate["selection"] = played(run, candidate["model"], SELECTION_SEED)
            print(f"{run}: {candidate['model']} selection {candidate['selection']['mean']:.1f}",
                  flush=True)
            save()
    chosen = max(state["candidates"], key=lambda c: c["selection"]["mean"])
    state["deployed"] = chosen["model"]
    for model in dict.fromkeys([chosen["model"], "last"]):
        if model not in state["scores"]:
            state["scores"][model] = played(run, model, SCORE_SEED)
            print(f"{run}: {model} score {state['scores'][model]['mean']:.1f}", flush=True)
            save()
    save()
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        arm, tail = run.parts[-4], Path(*run.parts[-3:])
        select(run, HERE / "records" / arm / tail)


if __name__ == "__main__":
    main()
