"""MedMNIST v2's 28x28 sets (Yang et al., Scientific Data 10, 41 (2023)) from the ``.npz`` files the
``medmnist`` package distributes: ``{split}_images`` (N, 28, 28) or (N, 28, 28, 3) uint8 and
``{split}_labels`` (N, 1), or (N, 14) for the multi-label chestmnist.

Files are found as ``ROOT/NAME.npz`` or ``ROOT/medmnist/NAME.npz`` under the same roots as MNIST
(:func:`nisqdiff.data.candidate_roots`: ``--data-dir``, ``$NISQDIFF_DATA``, the user cache) and otherwise
downloaded from the MedMNIST v2 Zenodo record into the cache. Every file is checked against the MD5 the
``medmnist`` package publishes before it is used, and a download is verified before it is moved into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from .errors import DataError, UsageError

URL = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
# name: (MD5 of the .npz, image channels, multi-label) as medmnist 3.0's INFO lists them
SETS = {
    "pathmnist": ("a8b06965200029087d5bd730944a56c1", 3, False),
    "chestmnist": ("02c8a6516a18b556561a56cbdd36c4a8", 1, True),
    "dermamnist": ("0744692d530f8e62ec473284d019b0c7", 3, False),
    "octmnist": ("c68d92d5b585d8d81f7112f81e2d0842", 1, False),
    "pneumoniamnist": ("28209eda62fecd6e6a2d98b1501bb15f", 1, False),
    "retinamnist": ("bd4c0672f1bba3e3a89f0e4e876791e4", 3, False),
    "breastmnist": ("750601b1f35ba3300ea97c75c52ff8f6", 1, False),
    "bloodmnist": ("7053d0359d879ad8a5505303e11de1dc", 3, False),
    "tissuemnist": ("ebe78ee8b05294063de985d821c1c34b", 1, False),
    "organamnist": ("68e3f8846a6bd62f0c9bf841c0d9eacc", 1, False),
    "organcmnist": ("b9ceb9546e10131b32923c5bbeaea2b1", 1, False),
    "organsmnist": ("9ab87b696fb54e2a387ebe992d6ed5f1", 1, False),
}


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find(name: str, roots: list[Path]) -> Path | None:
    """The first ``NAME.npz`` under ``roots`` (each root, then its ``medmnist/`` folder)."""
    for root in roots:
        for path in (root / f"{name}.npz", root / "medmnist" / f"{name}.npz"):
            if path.is_file():
                return path
    return None


def download(name: str, dest: Path, expected_md5: str | None = None) -> Path:
    """Download ``name``'s .npz into ``dest`` through a temporary file, verified against its MD5 before it is
    renamed into place (a failed or corrupt download leaves nothing). :class:`DataError` when it fails."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{name}.npz"
    fd, tmp = tempfile.mkstemp(dir=dest, suffix=".npz.tmp")
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(URL.format(name=name), timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        if md5(tmp) != (expected_md5 or SETS[name][0]):
            raise DataError(f"download of {name}.npz failed its MD5 check; try again later")
        tmp.replace(target)
    except OSError as exc:
        raise DataError(f"could not download {name}.npz from {URL.format(name=name)}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def load(name: str, split: str, roots: list[Path], cache: Path, allow_download: bool = True,
         expected_md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(images (N, 28, 28) or (N, 28, 28, 3) uint8, labels (N,) int64, or (N, 14) for chestmnist) of
    ``split``. :class:`DataError` for a missing file (the places looked and the fix), a file that fails its
    MD5 check, or one without the split's arrays."""
    path = find(name, roots)
    if path is None and allow_download:
        try:
            path = download(name, cache / "medmnist", expected_md5)
        except DataError as exc:
            looked = ", ".join(str(r) for r in roots)
            raise DataError(f"{name}.npz not found in {looked} and {exc}; put it in one of them (e.g. --data-dir DIR)") from None
    if path is None:
        raise DataError(f"{name}.npz not found in {', '.join(str(r) for r in roots)}; put it there (e.g. --data-dir DIR)")
    if md5(path) != (expected_md5 or SETS[name][0]):
        raise DataError(f"{path} fails its MD5 check (not MedMNIST v2's {name}.npz, or corrupt); delete it and download it again")
    try:
        with np.load(path) as data:
            images, labels = data[f"{split}_images"], data[f"{split}_labels"]
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path} holds no {split} images and labels ({exc})") from None
    if images.shape[1:3] != (28, 28) or images.dtype != np.uint8 or len(images) != len(labels):
        raise DataError(f"{path}: {split}_images are {images.dtype}{images.shape}, not (N, 28, 28[, 3]) uint8 with one label row each")
    labels = labels.astype(np.int64)
    return images, (labels[:, 0] if labels.shape[1:] == (1,) else labels)


def check_trainable(name: str, arch: str | None) -> None:
    """:class:`UsageError` where ``arch`` cannot take dataset ``name``'s images: colour sets (of
    MedMNIST) need an ``-rgb`` bottleneck U-Net (De Falco et al.'s U-Nets take one channel), grey sets
    (every other) a grey one. ``arch`` None (a resume's own) passes."""
    from .models import bottleneck_name, get_arch

    cfg = get_arch(arch) if arch else None
    colour = name in SETS and SETS[name][1] != 1
    if cfg is None or colour == (cfg.channels == 3):
        return
    if not colour:
        raise UsageError(f"{name} has grey images; --arch {arch} takes RGB: drop its -rgb")
    if cfg.family != "bottleneck":
        raise UsageError(f"{name} has colour images and {arch} takes one channel: use --arch "
                         f"{bottleneck_name(True, channels=3)} (or a grey set, e.g. {', '.join(n for n, s in SETS.items() if s[1] == 1)})")  # fmt: skip
    raise UsageError(f"{name} has colour images: use --arch {arch}-rgb")
