"""The ``fop-rl`` command line: train, evaluate, render, sweep, tune, report, inspect, toy.

Bad input of any kind ends with one line ``error: ...`` on stderr and exit status 2. Rooms:
:mod:`~fop_rl.cli.parser` (the options), :mod:`~fop_rl.cli.overrides` (flags turned into config
overrides), :mod:`~fop_rl.cli.commands` (what each command does), :mod:`~fop_rl.cli.display`
(what it shows).
"""

from __future__ import annotations

import sys

from fop_rl.cli.commands import (
    cmd_evaluate,
    cmd_inspect,
    cmd_render,
    cmd_report,
    cmd_sweep,
    cmd_toy,
    cmd_train,
    cmd_tune,
)
from fop_rl.cli.parser import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, build_parser
from fop_rl.config import ConfigError
from fop_rl.rundir import RunError

COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "tune": cmd_tune, "report": cmd_report,
            "inspect": cmd_inspect, "evaluate": cmd_evaluate,
            "render": cmd_render, "toy": cmd_toy}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


__all__ = ["COMMANDS", "EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "build_parser", "main",
           "run"]
