"""A run's progress bar on a terminal (rich), readable at 80 columns."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

SPEED_WINDOW_S = 30.0  # rich's speed: the steps of the last 30 s


class SettledTimeRemaining(TimeRemainingColumn):
    """rich's time remaining, shown once its speed window no longer holds the run's first
    seconds (building environments, compiling, a resume's loading): ``-:--:--`` until then."""

    def render(self, task: Task) -> Text:
        if task.elapsed is None or task.elapsed < 2 * SPEED_WINDOW_S:
            return Text("-:--:--", style="progress.remaining")
        return super().render(task)


def progress_bar(console: Console | None = None) -> Progress:
    """A run's bar, readable at 80 columns: the bar, steps done of the total, speed, the last
    evaluation and the time remaining (the run's name goes on a line of its own)."""
    return Progress(BarColumn(bar_width=16), MofNCompleteColumn(),
                    TextColumn("{task.fields[speed]}"), TextColumn("eval {task.fields[reward]}"),
                    SettledTimeRemaining(),
                    console=console, speed_estimate_period=SPEED_WINDOW_S)
