"""Checkpoints: atomic writes and loads that name the problem (wrong file, wrong architecture)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .models import UNet, get_arch

FORMAT = "nisqdiff-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, not nisqdiff's, or of the wrong architecture."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write, mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``: a crash
    never leaves half a file, and the temporary file is removed on failure."""
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
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` through :func:`atomic_write`."""
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def load_checkpoint(path: str | os.PathLike, expect_arch: str | None = None) -> dict:
    """Load a training checkpoint (a dict with ``format``, ``arch``, ``model``, ``ema``, ...).

    Raises :class:`CheckpointError` if the file is missing or unreadable, is not a nisqdiff
    checkpoint, or holds another architecture than ``expect_arch`` (naming both).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a nisqdiff checkpoint (expected format {FORMAT})")
    if expect_arch is not None and ckpt["arch"] != expect_arch:
        raise CheckpointError(f"checkpoint {path} holds architecture '{ckpt['arch']}', expected '{expect_arch}'")
    return ckpt


def model_from_checkpoint(ckpt: dict, ema: bool = True) -> UNet:
    """Rebuild the U-Net of ``ckpt`` with its EMA (default) or raw training weights, in eval mode."""
    get_arch(ckpt["arch"])
    model = UNet(ckpt["arch"])
    model.load_state_dict(ckpt["ema" if ema else "model"])
    return model.eval()
