"""What keeps one store from being damaged by another command: a writer lock per worker slot, and the
rule that a merge never overwrites a file it did not make."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Sequence

from ._format import MANIFEST, StoreError


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError):
        return "another process"


def acquire_writer_lock(folder: Path, worker: int, workers: int) -> IO[str] | None:
    """Take ``folder/.writer-<worker>-of-<workers>.lock`` for writing those shards; close the returned handle
    to release it. A second writer of the same shards gets a :class:`StoreError` naming the holder. The lock
    is an ``flock``: the system drops it when the holder dies (even by ``kill -9``), so a resumed run is
    never blocked by a dead one. ``None`` where the system has no ``flock`` (Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = folder / f".writer-{worker}-of-{workers}.lock"
    handle = open(lock, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreError(
            f"{folder} is being written as worker {worker} of {workers} by {_holder(lock)}; wait for it to "
            "finish (or stop it), or give this process another --worker"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
    handle.flush()
    return handle


def release(handle: IO[str] | None) -> None:
    """Release a lock from :func:`acquire_writer_lock`."""
    if handle is not None:
        handle.close()


def _store_folder_of(path: Path) -> Path | None:
    for folder in [path, *path.parents]:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def check_merge_target(out: Path, sources: Sequence[Path]) -> None:
    """Refuse a merge output that would destroy data: a path inside a store folder, one of the sources, or
    an existing file that is not a merged store (only what ``merge`` made may be replaced)."""
    resolved = out.resolve()
    inside = _store_folder_of(resolved.parent)
    if inside is not None:
        raise StoreError(f"--out {out} is inside the store {inside}; write the merged file outside every store folder")
    for source in sources:
        if resolved == Path(source).resolve():
            raise StoreError(f"--out {out} is one of the stores to merge; name a new file")
    if out.is_dir():
        raise StoreError(f"--out {out} is a folder; the merged store is one .h5 file")
    if out.exists():
        from ._format import Store

        try:
            Store(out)
        except StoreError:
            raise StoreError(f"--out {out} exists and is not a merged unmask store; it is left as it is: name a new file") from None
