"""The one place where a failure of any ``unmask`` command becomes an exit code and one line on stderr.

Every command runs inside :func:`run_command`. Exceptions are looked up in :data:`EXIT_CODES` (the first
entry whose type matches wins): a usage problem exits 2, a failure of the work exits 1, an interruption
130. Anything not in the table is a bug: it gets one line too, and its traceback goes to a file whose
path the line gives (``$UNMASK_TRACEBACK_DIR``, else the temporary folder), so no user sees a traceback
and none is lost for the bug report.
"""
from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from ._args import EXIT_FAILED, EXIT_USAGE, UsageError, error

EXIT_INTERRUPTED = 130
#: errno values that mean the disk (or the user's quota) is full.
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def _os_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    if exc.errno in _DISK_FULL:
        return f"{where}no space left on device; free some space (finished outputs are kept) and run the command again"
    return f"{where}{exc.strerror or _text(exc)}"


def _exit_codes() -> tuple[tuple[type[BaseException], int, Callable[[BaseException, str], str]], ...]:
    """(exception type, exit code, message) rows, most specific first."""
    from ..data.images import ImageLoadError
    from ..store import StoreError

    plain: Callable[[BaseException, str], str] = lambda exc, command: _text(exc)
    return (
        (KeyboardInterrupt, EXIT_INTERRUPTED, lambda exc, command: "interrupted"),
        (UsageError, EXIT_USAGE, plain),
        (StoreError, EXIT_USAGE, plain),
        (ImageLoadError, EXIT_USAGE, plain),
        (MemoryError, EXIT_FAILED, lambda exc, command: f"{command}: out of memory{': ' + _text(exc) if str(exc) else ''}; use a smaller --batch-size or image size"),
        (FileNotFoundError, EXIT_USAGE, lambda exc, command: _os_message(exc)),  # type: ignore[arg-type]
        (PermissionError, EXIT_USAGE, lambda exc, command: _os_message(exc)),  # type: ignore[arg-type]
        (IsADirectoryError, EXIT_USAGE, lambda exc, command: _os_message(exc)),  # type: ignore[arg-type]
        (NotADirectoryError, EXIT_USAGE, lambda exc, command: _os_message(exc)),  # type: ignore[arg-type]
        (OSError, EXIT_FAILED, lambda exc, command: _os_message(exc)),  # type: ignore[arg-type]
        (ValueError, EXIT_USAGE, plain),  # a value the API refused (a parameter out of range, a bad file)
    )


#: Filled on first use (the rows import the store and image modules).
EXIT_CODES: tuple[tuple[type[BaseException], int, Callable[[BaseException, str], str]], ...] = ()


def exit_code(exc: BaseException, command: str) -> tuple[int, str] | None:
    """The exit code and one-line message for ``exc`` from :data:`EXIT_CODES`, or ``None`` if it is not there."""
    global EXIT_CODES
    if not EXIT_CODES:
        EXIT_CODES = _exit_codes()
    for kind, code, message in EXIT_CODES:
        if isinstance(exc, kind):
            return code, message(exc, command)
    return None


def save_traceback(exc: BaseException, command: str) -> Path | None:
    """Write ``exc``'s traceback to a file for the bug report; its path, or ``None`` if it cannot be written."""
    folder = Path(os.environ.get("UNMASK_TRACEBACK_DIR") or tempfile.gettempdir())
    path = folder / f"unmask-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.traceback.txt"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        text = f"unmask {command} {' '.join(sys.argv[1:])}\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        path.write_text(text, encoding="utf-8", errors="backslashreplace")
    except Exception:  # noqa: BLE001 - the last resort must not fail itself
        return None
    return path


def run_command(command: str, function: Callable[[Any], int], args: Any, *, on_interrupt: str = "") -> int:
    """``function(args)``'s exit code; any exception becomes one line on stderr and the code of :data:`EXIT_CODES`.

    ``on_interrupt`` is added to the line of Ctrl-C (e.g. how to resume).
    """
    try:
        return function(args)
    except BaseException as exc:  # noqa: BLE001 - this is the one place that turns exceptions into exit codes
        if isinstance(exc, SystemExit):
            raise
        found = exit_code(exc, command)
        if found is not None:
            code, message = found
            if code == EXIT_INTERRUPTED and on_interrupt:
                message = f"{message}; {on_interrupt}"
            error(message)
            return code
        saved = save_traceback(exc, command)
        where = f"traceback saved to {saved}" if saved is not None else "the traceback could not be saved"
        error(f"{command} failed: {type(exc).__name__}: {_text(exc) or 'no message'} ({where}; please report it)")
        return EXIT_FAILED
