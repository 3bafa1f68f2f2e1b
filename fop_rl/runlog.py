"""A run's logs across resumes: every writer appends, and a resume continues each log.

A resumed run continues from a checkpoint at step N. What the stopped process logged after N
(only after a crash or SIGKILL: Ctrl-C and SIGTERM checkpoint where they stop) described
training that the checkpoint does not hold; the resumed process does those steps again. So:

- ``tb/progress.csv`` keeps its rows up to step N, then the new process appends its own; new
  columns widen the file atomically (SB3's own CSV writer rewrites it in place);
- TensorBoard: the new process writes a new events file that purges the old files' events
  after step N (torch's ``SummaryWriter(purge_step=...)``, which TensorBoard honours);
- the monitor files keep every episode (episodes happened, whatever training kept) and their
  clock: ``t`` counts from the first process's ``t_start``, in every segment;
- evaluations.npz: the checkpoint's copy (up to N), rewritten at the resume.

Each step appears once in each log, in increasing order.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import (
    CSVOutputFormat,
    Logger,
    TensorBoardOutputFormat,
    filter_excluded_keys,
)
from torch.utils.tensorboard import SummaryWriter

from fop_rl.rundir import atomic_write_text

STEP_COLUMN = "time/total_timesteps"  # SB3 logs it in every row


# SB3 counts these from each ``learn`` call: a resumed run continues them from its last row
RUN_COUNTERS = ("time/iterations", "time/time_elapsed")


def logger(folder: Path, resume_step: int | None) -> Logger:
    """SB3's logger of a run (CSV and TensorBoard in ``folder``), continuing its logs at
    ``resume_step`` (None: a new run, whose logs start empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    progress = ContinuedCSV(folder / "progress.csv", resume_step)
    return ContinuedLogger(str(folder), [progress, ContinuedTensorBoard(folder, resume_step)],
                           progress.last_values(RUN_COUNTERS))


class ContinuedLogger(Logger):
    """SB3's logger whose run counters (:data:`RUN_COUNTERS`) continue from ``offsets``, the
    values the run had logged at its resume step, so that they rise across resumes."""

    def __init__(self, folder: str, output_formats: list, offsets: dict[str, float]):
        super().__init__(folder, output_formats)
        self.offsets = offsets

    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        if key in self.offsets:
            value = type(value)(value + self.offsets[key])
        super().record(key, value, exclude)


class ContinuedCSV(CSVOutputFormat):
    """SB3's progress.csv writer, continuing the rows up to ``resume_step`` of an existing
    file; a column first logged later widens the file atomically."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.keys, lines = _rows_up_to(path, resume_step) if resume_step is not None else ([], [])
        atomic_write_text(path, "".join(lines))
        self._reopen()
        self.separator, self.quotechar = ",", '"'

    def last_values(self, keys: tuple[str, ...]) -> dict[str, float]:
        """``keys``' last values in the rows kept (a row of evaluations leaves them empty)."""
        self.file.seek(0)
        values = {k: float(row[k]) for row in csv.DictReader(self.file) for k in keys
                  if row.get(k) not in (None, "")}
        self.file.seek(0, os.SEEK_END)
        return values

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]],
              step: int = 0) -> None:
        extra = [k for k in filter_excluded_keys(key_values, key_excluded, "csv")
                 if k not in self.keys]
        if extra:
            self._widen(extra)
        super().write(key_values, key_excluded, step)  # now a row appended, nothing rewritten

    def _widen(self, extra: list[str]) -> None:
        self.file.seek(0)
        rows = self.file.read().splitlines(keepends=True)[1:]
        self.keys.extend(extra)
        header = self.separator.join(self.keys) + "\n"
        padding = self.separator * len(extra)
        self.file.close()
        atomic_write_text(self.path, header + "".join(r[:-1] + padding + "\n" for r in rows))
        self._reopen()

    def _reopen(self) -> None:
        """Open the file to append (and to read, for widening), as SB3's writer holds it open."""
        self.file = open(self.path, "r+")  # noqa: SIM115 (closed by close(), as SB3's)
        self.file.seek(0, os.SEEK_END)


def _rows_up_to(path: Path, step: int) -> tuple[list[str], list[str]]:
    """The columns of an existing progress.csv and its lines (header first) up to ``step``; an
    unfinished last line (a process killed while writing it) is left out."""
    if not path.exists():
        return [], []
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    if not lines:
        return [], []
    keys = next(csv.reader([lines[0]]))
    column = keys.index(STEP_COLUMN) if STEP_COLUMN in keys else None
    kept = [lines[0]]
    for line in lines[1:]:
        values = next(csv.reader([line]))
        try:
            if column is None or float(values[column]) <= step:
                kept.append(line)
        except (IndexError, ValueError):
            continue  # a row without its step cannot be placed
    return keys, kept


class ContinuedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard writer whose events file, in a resumed run, hides the earlier files'
    events after ``resume_step``."""

    def __init__(self, folder: Path, resume_step: int | None):
        purge = None if resume_step is None else resume_step + 1  # keep step N's own events
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge)
        self._is_closed = False


def trim_unfinished_line(path: Path) -> None:
    """Drop a last line without its newline (a process killed while writing it), so that what
    is appended next starts a line of its own."""
    text = path.read_text()
    if text and not text.endswith("\n"):
        atomic_write_text(path, text[:text.rfind("\n") + 1])


def first_t_start(path: Path) -> float | None:
    """The ``t_start`` in a monitor file's header (SB3's ``#{...}`` first line), if readable."""
    try:
        with open(path) as f:
            first = f.readline()
        return float(json.loads(first.removeprefix("#"))["t_start"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
