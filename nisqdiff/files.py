"""File helpers shared by every layer: atomic writes and content hashes.

A write goes to a temporary file beside its target and is renamed over it, so a crash never leaves
half a file; the temporary file is removed on failure.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | os.PathLike, error: type[Exception], what: str, fmt: str | None = None):
    """The JSON document at ``path``; ``error`` (a :class:`~nisqdiff.errors.NisqdiffError`) naming ``what``
    and the file when it is not valid JSON, or with ``fmt`` when it is not an object of that ``format``."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid JSON: {exc}") from None
    if fmt is not None and (not isinstance(data, dict) or data.get("format") != fmt):
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise error(f"{path} is not a nisqdiff {what} (format {found!r}, expected {fmt!r})")
    return data


def atomic_write(path: str | os.PathLike, write, mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``: a crash
    never leaves half a file, and the temporary file is removed on failure. Returns ``path``. An
    ``OSError`` while writing (a full disk, a file-size limit) is raised with ``path`` as its filename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` through :func:`atomic_write`."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` through :func:`atomic_write`."""
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


LOCK_NAME = ".nisqdiff.lock"


def check_name(name: str, what: str = "--name") -> str:
    """``name`` if it is safe as a file name (letters, digits, ``_``, ``.``, ``-``; not starting with a dot),
    else :class:`~nisqdiff.errors.UsageError`: names become file names only after this check."""
    import re

    from .errors import UsageError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name or ""):
        raise UsageError(f"{what} '{name}' is not a plain file name (letters, digits, _ . -, no path)")
    return name


def check_writable(path: str | os.PathLike, kind: str = "folder") -> Path:
    """Check, without writing anything, that ``path`` can be created or written as a ``kind`` ("folder"
    or "file"): it is not the other kind already, and its nearest existing parent is a writable folder.
    Returns the path; :class:`~nisqdiff.errors.UsageError` naming it otherwise."""
    from .errors import UsageError

    path = Path(path)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder; choose another path")
    if kind == "file" and path.is_dir():
        raise UsageError(f"{path} is a folder; give a file path")
    parent = path if kind == "folder" and path.is_dir() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{parent} is not a writable folder; cannot write {path}")
    return path


class RunLock:
    """An exclusive lock on a run folder for the whole run (``fcntl.flock`` on ``FOLDER/.nisqdiff.lock``,
    which holds the owner's PID): a second writer is refused with
    :class:`~nisqdiff.errors.UsageError` naming the holder's PID. The lock goes with the process, so a
    killed run leaves no stale lock. Use as a context manager; creates the folder."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        from .errors import UsageError

        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.folder / LOCK_NAME, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise UsageError(f"{self.folder} is in use by another nisqdiff run (PID {holder}); wait for it or use another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_write` calls left in ``folder`` (and
    its sub-folders); returns them. Only call with the folder's :class:`RunLock` held."""
    folder = Path(folder)
    orphans = [p for p in folder.rglob("*.tmp") if p.is_file()] if folder.is_dir() else []
    for p in orphans:
        p.unlink()
    return orphans
