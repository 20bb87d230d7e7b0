"""Sampling images from a trained model (EMA weights) with DDPM or DDIM, and saving them."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoints import atomic_write
from .diffusion import GaussianDiffusion

SAMPLERS = ("ddpm", "ddim")


def sample_images(
    model: torch.nn.Module,
    num: int,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    progress=None,
    batches: list[int] | None = None,
) -> torch.Tensor:
    """Generate ``num`` images (num, 1, 28, 28) in [-1, 1] on CPU.

    ``sampler`` "ddpm" runs all T = 1000 ancestral steps (``steps`` is ignored), "ddim" runs
    ``steps`` deterministic (eta 0) or stochastic steps. Batch b draws all its noise from a generator
    seeded with ``seed * 1_000_003 + b``, so a (seed, batch_size) pair always gives the same noise,
    whatever executes the circuits. ``progress`` is called once per denoising step of each batch.
    ``batches`` (indices) generates only those batches (a resumed study), concatenated in that order.
    Raises ``ValueError`` for an unknown sampler or non-positive counts.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler '{sampler}'; valid: {', '.join(SAMPLERS)}")
    if num <= 0 or batch_size <= 0:
        raise ValueError("--num and --batch-size must be positive")
    diffusion = GaussianDiffusion()
    model = model.to(device).eval()
    out = []
    for b in range(math.ceil(num / batch_size)) if batches is None else batches:
        n = min(batch_size, num - b * batch_size)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + b)
        shape = (n, 1, 28, 28)
        if sampler == "ddpm":
            x = diffusion.ddpm_sample(model, shape, gen, device=device, progress=progress)
        else:
            x = diffusion.ddim_sample(model, shape, gen, steps=steps, eta=eta, device=device, progress=progress)
        out.append(x.cpu())
    return torch.cat(out)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] -> (N, H, W) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).squeeze(1).numpy()


def grid_array(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, 1, H, W) images in [-1, 1] tiled into one uint8 array (``nrow`` per row, default ~sqrt(N))."""
    pix = to_uint8(images)
    n, h, w = pix.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = pix[i]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, pad: int = 2) -> Path:
    """Save (N, 1, H, W) images in [-1, 1] as one PNG grid (:func:`grid_array`)."""
    grid = grid_array(images, nrow, pad)
    return atomic_write(path, lambda fh: Image.fromarray(grid).save(fh, format="PNG"))
