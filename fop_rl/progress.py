"""How durations read to a person, in the command line's and the run's lines."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``1h02m`` or ``3m07s``; ``-`` where it is not known (NaN: no speed measured yet)."""
    if seconds != seconds:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
