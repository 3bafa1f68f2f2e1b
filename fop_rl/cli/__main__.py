"""``python -m fop_rl.cli``: the command line, as the ``fop-rl`` script runs it."""

from fop_rl.cli import run

run()
