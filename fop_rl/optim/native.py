"""FOP's step with its calls made from C++: the same torch operations on the same buffers.

On the small layers of RL policies about half of FOP's step is the cost of calling torch from
Python, not arithmetic (benchmarks/optimizer_step.py --widths 64 2). :class:`Pool`'s step where P
is full or low rank (on one side, or both: Kronecker), Adam learns M and torch's SGD or Adam is
the base, with the eigenvalue cap and hyper_normalize where asked, is here written once more as
the same sequence of ATen calls in C++, which FOP runs where it applies: the results are bitwise
the same (tested). The extension is built with torch's JIT
(``torch.utils.cpp_extension``: a C++ compiler and ninja, at the first step of the first FOP in a
process), once per build configuration: one folder per source, torch, Python and compiler under
torch's extension cache, so venvs and clones sharing a home load each other's build instead of
rebuilding it. The build runs in a process of its own session: a Ctrl-C to the run neither
stops the compiler nor leaves a half-built state the next start cannot finish. Where it cannot
be built, FOP steps from Python after a one-line note.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NAME = "fop_rl_native_step"
FLAGS = ["-O2"]
_SOURCE = Path(__file__).with_name("native_step.cpp")
# the build's child: this file as __main__ (argv: this file, the folder), without this file's
# folder or the working directory first on sys.path, where a module could shadow the stdlib's
_CHILD = ("import runpy, sys; del sys.path[0]; sys.argv = sys.argv[1:]; "
          "runpy.run_path(sys.argv[0], run_name='__main__')")


def build_directory() -> Path:
    """This build configuration's folder: named by a hash of everything the build depends on
    (the source, the flags, torch's version and place, Python's headers, the compiler), under
    torch's extension cache (``TORCH_EXTENSIONS_DIR``, else ``~/.cache/torch_extensions``)."""
    import torch

    inputs = [_SOURCE.read_text(), FLAGS, torch.__version__, str(Path(torch.__file__).parent),
              sysconfig.get_paths()["include"], sys.version, os.environ.get("CXX", "c++")]
    key = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root) / f"{NAME}-{key}"


def _built(folder: Path) -> bool:
    return (folder / f"{NAME}.so").exists()


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """The folder to one process at a time (the lock goes with its holder, however it ends);
    torch's own lock in it, which only a builder killed mid-build leaves, removed."""
    with folder.with_name(folder.name + ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        (folder / "lock").unlink(missing_ok=True)
        yield


def _load_inline(folder: Path) -> Any:
    from torch.utils.cpp_extension import load_inline

    return load_inline(NAME, _SOURCE.read_text(), extra_cflags=FLAGS,
                       build_directory=str(folder))


def _build(folder: Path) -> None:
    """Build in a child of its own session (this file run as a script), so the run's Ctrl-C does
    not reach the compiler; an interrupted wait leaves the child to finish for the next start."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, __file__, str(folder)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    _, errors = child.communicate()
    if child.returncode:
        lines = [line.strip() for line in errors.splitlines() if line.strip()]
        stopped = [i for i, line in enumerate(lines) if line.startswith("ninja: build stopped")]
        # the failing command's last words (a compiler's error, "c++: not found"), else the end
        reason = lines[stopped[-1] - 1] if stopped and stopped[-1] else (lines or ["?"])[-1]
        raise RuntimeError(f"{reason} (the build exited with {child.returncode})")


def load() -> Any:
    """The extension, built first where this configuration has no build yet."""
    folder = build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    if not _built(folder):
        print(f"note: building FOP's C++ step (once per build configuration, about a "
              f"minute; kept in {folder})", file=sys.stderr, flush=True)
        _build(folder)
    with _exclusive(folder):
        return _load_inline(folder)


@functools.cache
def extension() -> Any | None:
    """The built extension (its ``Pool`` class), or None after a one-line note where it cannot
    be built (no C++ compiler, no ninja, a failed build)."""
    try:
        return load()
    except Exception as e:  # building runs a compiler: any failure means the Python step
        reason = (str(e).strip().splitlines() or [""])[0]
        print(f"note: FOP's C++ step could not be built ({type(e).__name__}: {reason}); FOP "
              "steps from Python", file=sys.stderr, flush=True)
        return None


if __name__ == "__main__":  # the build's child (see _build): nothing of fop_rl imported
    _folder = Path(sys.argv[1])
    with _exclusive(_folder):
        if not _built(_folder):
            _load_inline(_folder)
