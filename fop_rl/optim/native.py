"""FOP's step with its calls made from C++: the same torch operations on the same buffers.

On the small layers of RL policies about half of FOP's step is the cost of calling torch from
Python, not arithmetic (benchmarks/optimizer_step.py --widths 64 2). :class:`Pool`'s step where P
is full or low rank (on one side, or both: Kronecker), Adam learns M and torch's SGD or Adam is
the base, with the eigenvalue cap and hyper_normalize where asked, is here written once more as
the same sequence of ATen calls in C++, which FOP runs where it applies: the results are bitwise
the same (tested). The extension is built with torch's JIT
(``torch.utils.cpp_extension``: a C++ compiler and ninja, at the first step of the first FOP in a
process; torch caches the build on disk, about a minute the first time on a machine). Where it
cannot be built, FOP steps from Python after a one-line note.
"""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path
from typing import Any

_SOURCE = Path(__file__).with_name("native_step.cpp")


@functools.cache
def extension() -> Any | None:
    """The built extension (its ``Pool`` class), or None after a one-line note where it cannot
    be built (no C++ compiler, no ninja, a failed build)."""
    # torch builds it once per machine (and per change of the source), silently: say so when
    # it takes long enough to be a build rather than a load from torch's cache
    building = threading.Timer(2.0, print, ["note: building FOP's C++ step (once on this "
                                            "machine, about a minute; cached after)"],
                               {"file": sys.stderr, "flush": True})
    building.start()
    try:
        from torch.utils.cpp_extension import load_inline

        return load_inline("fop_rl_native_step", _SOURCE.read_text(), extra_cflags=["-O2"])
    except Exception as e:  # building runs a compiler: any failure means the Python step
        reason = (str(e).strip().splitlines() or [""])[0]
        print(f"note: FOP's C++ step could not be built ({type(e).__name__}: {reason}); FOP "
              "steps from Python", file=sys.stderr, flush=True)
        return None
    finally:
        building.cancel()
