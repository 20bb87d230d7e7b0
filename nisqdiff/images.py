"""Images as files and pixels: [-1, 1] tensors to uint8, PNG grids.

Generated images are (N, C, H, W) float tensors (C = 1 grey, 3 RGB) in [-1, 1]; :func:`to_uint8` maps them to the uint8
pixels that metrics (torchmetrics) and PNGs take, :func:`grid_array` tiles them, :func:`save_grid`
writes the tiling as one PNG, atomically; :func:`load_samples` reads back what `nisqdiff sample` saved.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError, reason
from .files import atomic_write


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, C, H, W) in [0, 255] (clamped, rounded)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def grid_array(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] tiled into one uint8 array (``nrow`` per row, default ~sqrt(N)):
    (rows, cols) for grey images, (rows, cols, 3) for RGB."""
    pix = to_uint8(images).permute(0, 2, 3, 1).numpy()
    pix = pix[..., 0] if pix.shape[-1] == 1 else pix
    n, h, w = pix.shape[:3]
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, *pix.shape[3:]), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = pix[i]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, pad: int = 2) -> Path:
    """Save (N, C, H, W) images in [-1, 1] (grey or RGB) as one PNG grid (:func:`grid_array`)."""
    from PIL import Image

    grid = grid_array(images, nrow, pad)
    return atomic_write(path, lambda fh: Image.fromarray(grid).save(fh, format="PNG"))


def load_samples(path: Path) -> tuple[torch.Tensor, dict]:
    """(images (N, 1, 28, 28) in [-1, 1], metadata) of a ``samples.pt`` written by ``nisqdiff sample``.
    :class:`~nisqdiff.errors.UsageError` in one line for a missing or unreadable file, one without
    such images, or non-finite pixels."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"samples file {path} " + ("is not a file" if path.exists() else "does not exist"))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise UsageError(f"samples file {path} is unreadable: {reason(exc)}") from None
    images = payload.get("images") if isinstance(payload, dict) else None
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise UsageError(f"samples file {path} holds no 'images' of shape (N, 1, 28, 28); write it with `nisqdiff sample`")
    if not torch.isfinite(images).all():
        raise UsageError(f"samples file {path} holds non-finite pixels; it cannot be scored")
    return images, payload.get("meta", {})
