"""What the ``unmask`` commands share: exit codes, the usage error, argument types."""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from .._utils.errors import UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0, "an integer >= 0")


def error(message: str) -> None:
    """Report a failure in one line on stderr, as every command does."""
    print(f"unmask: error: {message}", file=sys.stderr, flush=True)


def add_model_options(parser: argparse.ArgumentParser, default: str | None = "efficientnet-lite0",
                      default_help: str | None = None) -> None:
    """``--model``, ``--arch`` and ``--trust-pickle``: which network to load and how (see :func:`unmask.models.spec.load_model_spec`)."""
    parser.add_argument("--model", default=default, metavar="SPEC",
                        help="zoo name, module:function, TorchScript or state-dict file "
                             f"(default: {default_help or default})")
    parser.add_argument("--arch", metavar="MODULE:FUNCTION",
                        help="builds the network a state-dict file given as --model is loaded into")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow --model files that are full pickles (they can run arbitrary code)")


def output_folder(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Create the folder ``path`` and prove it writable, before a command starts its work.

    A command that can only write its results at the end checks here first, so an unwritable
    ``--out`` costs a second, not the whole run.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as problem:
        raise UsageError(f"cannot create {option} {folder}: {problem.strerror or problem}") from None
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".unmask-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as problem:
        raise UsageError(f"cannot write to {option} {folder}: {problem.strerror or problem}") from None
    return folder


def check_device(name: str) -> str:
    """``--device``: a torch device that can hold a model here (cpu, cuda[:N], mps); else a UsageError."""
    import torch

    try:
        parsed = torch.device(name)
    except (RuntimeError, ValueError, TypeError) as problem:
        raise UsageError(f"--device {name!r} is not a device: {' '.join(str(problem).split())}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"--device {name}: MPS is not available here; use --device cpu")
    elif parsed.type != "cpu":
        raise UsageError(f"--device {name}: unmask runs models on cpu, cuda or mps, not {parsed.type!r}")
    return name


def unique_name(name: str, taken: set[str]) -> str:
    """A file-system-safe form of ``name`` not yet in ``taken`` (case-insensitively; ``-2``, ``-3`` ... added),
    recorded in ``taken``."""
    base = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "image"
    candidate, k = base, 2
    while candidate.lower() in taken:
        candidate, k = f"{base}-{k}", k + 1
    taken.add(candidate.lower())
    return candidate
