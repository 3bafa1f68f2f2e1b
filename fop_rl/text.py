"""Text in and out, for every room: YAML read by libyaml's C parser, a library's error on one
line. Imports nothing of the application, so that any module may use it."""

from __future__ import annotations

from typing import Any

import yaml


def read_yaml(text: str) -> Any:
    """YAML text as Python values (safe), by libyaml's C parser where PyYAML has one (the
    packaged configs, which every command that loads a config reads, parse several times
    faster)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def first_line(error: BaseException) -> str:
    """What a library's error says, on one line (its first), for a one-line ``error:``."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
