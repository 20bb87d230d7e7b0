"""Build and load the package's C kernels (the chain simulator, the fused linear attention) on first use.

A kernel's C sources ship with the package and are compiled with the machine's ``cc`` (``-O3
-march=native -fopenmp`` and the kernel's own flags) into the user cache (``$XDG_CACHE_HOME/nisqdiff/native``,
keyed by the sources' hash, the flags and the CPU's flags), once per machine, and loaded with ctypes.
Where no compiler works, the cached file is damaged, or ``NISQDIFF_NATIVE=0``, :func:`load` gives None and
the caller runs its torch path (one warning says why, except when switched off).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

BASE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nisqdiff" / "native"


def _cpu_id() -> bytes:
    """The machine type and CPU flags: ``-march=native`` code is only reused on the same kind of CPU
    (a home folder shared by different machines gets one library per kind)."""
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return (platform.machine() + flags).encode()


def library_path(name: str, sources: list[Path], flags: tuple[str, ...]) -> Path:
    """Where the library ``name`` built from ``sources`` with ``flags`` for this CPU lives (or will)."""
    source = b"".join(p.read_bytes() for p in sources)
    tag = hashlib.sha256(source + " ".join(BASE_FLAGS + flags).encode() + _cpu_id()).hexdigest()[:16]
    return cache_dir() / f"{name}-{tag}.so"


def load(name: str, sources: list[Path], flags: tuple[str, ...], fallback: str) -> ctypes.CDLL | None:
    """The library compiled from the ``.c`` files of ``sources`` (headers are hashed, not compiled), or None
    with a :class:`RuntimeWarning` ``nisqdiff: the compiled <name> cannot be used (why); <fallback>``."""
    if os.environ.get("NISQDIFF_NATIVE", "1") == "0":
        return None
    path = library_path(name, sources, flags)
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                built = Path(tmp) / path.name
                subprocess.run([os.environ.get("CC", "cc"), *BASE_FLAGS, *flags, *(str(p) for p in sources if p.suffix == ".c"),
                                "-o", str(built), "-lm"], check=True, capture_output=True, timeout=120)  # fmt: skip
                os.replace(built, path)  # atomic: concurrent builders each install a complete file
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            return _unavailable(name, f"{exc}{': ' + detail.decode()[:200] if detail else ''}", fallback)
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:  # e.g. a damaged file in the cache
        return _unavailable(name, f"{path} does not load: {exc}; delete it to build it again", fallback)


def _unavailable(name: str, why: str, fallback: str) -> None:
    warnings.warn(f"nisqdiff: the compiled {name.replace('_', ' ')} cannot be used ({why}); {fallback}", RuntimeWarning, stacklevel=5)
    return None


def ptr(t: torch.Tensor, kind=ctypes.c_float):
    """A ctypes pointer to ``t``'s data (the caller keeps ``t`` alive during the call)."""
    return ctypes.cast(t.data_ptr(), ctypes.POINTER(kind))
