"""MNIST and Fashion-MNIST from their original IDX files (gzip-compressed or raw).

Search order for a dataset's files (first folder holding all four wins):
``--data-dir``, ``$NISQDIFF_DATA``, the user cache (``$XDG_CACHE_HOME/nisqdiff`` or
``~/.cache/nisqdiff``) and, for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``.
Inside a root, files may sit in ``ROOT/<dataset>/`` or directly in ``ROOT/``. If none has them,
they are downloaded into the user cache from the public mirrors. Every file is verified against
the SHA-256 of its decompressed content; a truncated or corrupt file raises :class:`DataError`
naming that file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from . import medmnist
from .errors import DataError, UsageError

DATASETS = ("mnist", "fashion-mnist", *medmnist.SETS)  # MedMNIST's 28x28 sets: nisqdiff.medmnist
SPLITS = ("train", "test")

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# SHA-256 of the decompressed IDX content (../shared/data/README.md).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def check_dataset(name: str) -> str:
    """Return ``name`` if it is a known dataset, else raise :class:`~nisqdiff.errors.UsageError` listing the valid names."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")
    return name


def cache_dir() -> Path:
    """User cache folder for downloaded data (``$XDG_CACHE_HOME/nisqdiff`` or ``~/.cache/nisqdiff``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nisqdiff"


def candidate_roots(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for ``name``'s files, in order of preference."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    if os.environ.get("NISQDIFF_DATA"):
        roots.append(Path(os.environ["NISQDIFF_DATA"]))
    roots.append(cache_dir())
    if name == "fashion-mnist":
        roots.append(DEBIAN_FASHION)
    return roots


def _find_file(folder: Path, stem: str) -> Path | None:
    for fname in (stem + ".gz", stem):
        path = folder / fname
        if path.is_file():
            return path
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"corrupt or truncated data file {path}: {exc}; delete it and re-download") from exc


def read_idx(path: str | os.PathLike, expected_sha256: str | None = None) -> np.ndarray:
    """Parse one IDX file (raw or ``.gz``) into a uint8 array.

    Follows the IDX format of LeCun et al.: magic ``0x0000 08 NDIM`` (unsigned byte data), then NDIM
    big-endian int32 sizes. Raises :class:`DataError` naming ``path`` if the header is wrong, the
    payload is shorter or longer than the header says, or the content's SHA-256 differs from
    ``expected_sha256``.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"corrupt data file {path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"truncated data file {path}: header cut short")
    shape = struct.unpack(">" + "i" * ndim, raw[4:header])
    expected = int(np.prod(shape)) + header
    if len(raw) != expected:
        raise DataError(
            f"truncated or corrupt data file {path}: {len(raw)} bytes where the header promises {expected}; "
            "delete it and re-download"
        )
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise DataError(f"corrupt data file {path}: SHA-256 of its content does not match; delete it and re-download")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _folder_with_files(root: Path, name: str) -> Path | None:
    stems = [s for split in SPLITS for s in _FILES[split]]
    for folder in (root / name, root):
        if all(_find_file(folder, s) for s in stems):
            return folder
    return None


def _fetch_verified(url: str, target: Path, sha256: str) -> None:
    """Download ``url`` to a temporary file beside ``target``, verify it, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".gz")
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            shutil.copyfileobj(resp, out)
        read_idx(tmp, sha256)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def download(name: str, dest: Path | None = None) -> Path:
    """Download ``name``'s four IDX files into ``dest`` (default: the user cache) and verify them.

    Tries each mirror of :data:`MIRRORS` in turn; every file is checked against :data:`SHA256`
    before it is moved into place, so a failed download never leaves a partial file behind.
    Raises :class:`DataError` if no mirror delivers a verified copy.
    """
    dest = (dest or cache_dir()) / name
    dest.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for stem in _FILES[split]:
            if _find_file(dest, stem):
                continue
            errors = []
            for mirror in MIRRORS[name]:
                url = mirror + stem + ".gz"
                try:
                    _fetch_verified(url, dest / (stem + ".gz"), SHA256[name][stem])
                    break
                except Exception as exc:  # noqa: BLE001 - every mirror failure is reported together
                    errors.append(f"{url}: {exc}")
            else:
                raise DataError(f"could not download {name}/{stem}: " + "; ".join(errors))
    return dest


def locate(name: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """Folder holding ``name``'s IDX files, searching :func:`candidate_roots`, then downloading.

    Raises :class:`DataError` listing the places looked and the fix when nothing is found offline.
    """
    check_dataset(name)
    roots = candidate_roots(name, data_dir)
    for root in roots:
        folder = _folder_with_files(root, name)
        if folder is not None:
            return folder
    if data_dir is not None and not Path(data_dir).exists():
        raise DataError(f"--data-dir {data_dir} does not exist; point it at a folder holding {name}/ IDX files")
    if allow_download:
        try:
            return download(name)
        except DataError as exc:
            reason = f" (download failed: {str(exc)[:200]})"
    else:
        reason = ""
    looked = ", ".join(str(r) for r in roots)
    raise DataError(
        f"{name} not found in {looked}{reason}; put the IDX files in one of them "
        f"(e.g. --data-dir ../shared/data or NISQDIFF_DATA=/path/with/{name}/)"
    )


def load_images(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None, subset: int | None = None,
    classes: list[int] | None = None, per_class: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split as ``(images, labels)``.

    Returns images of shape (N, C, 28, 28) (C = 1; 3 for MedMNIST's colour sets), float32 in [-1, 1] (the
    diffusion scale of SPEC.md), and int64 labels of shape (N,) ((N, 14) for the multi-label chestmnist), of the images :func:`select` keeps (``subset``, ``classes``,
    ``per_class``; all images without them). Raises :class:`UsageError` for an unknown dataset or
    split or a selection the data cannot give, :class:`DataError` for missing or corrupt files.
    """
    images, labels, _ = load_selection(name, split, data_dir, subset, classes, per_class)
    return images, labels


def load_selection(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None, subset: int | None = None,
    classes: list[int] | None = None, per_class: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """:func:`load_images` with the kept images' indices in the split (M,), which reproduce the selection."""
    check_dataset(name)
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
    if name in medmnist.SETS:
        images, labels = medmnist.load(name, split, candidate_roots(name, data_dir), cache_dir())
        if labels.ndim > 1 and (classes is not None or per_class is not None):
            raise UsageError(f"{name} is multi-label; --classes and --per-class need one label per image")
        keep = select(labels, subset, classes, per_class, name) if labels.ndim == 1 else np.arange(len(labels))[:subset]
    else:
        folder = locate(name, data_dir)
        img_stem, lbl_stem = _FILES[split]
        images = read_idx(_find_file(folder, img_stem), SHA256[name][img_stem])
        labels = read_idx(_find_file(folder, lbl_stem), SHA256[name][lbl_stem])
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
        keep = select(labels, subset, classes, per_class, name)
    x = torch.from_numpy(images[keep]).float().div_(127.5).sub_(1.0)
    x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)  # (N, C, 28, 28): colour channels first
    return x.contiguous(), torch.from_numpy(labels[keep].astype(np.int64)), keep


def select(labels: np.ndarray, subset: int | None = None, classes: list[int] | None = None, per_class: int | None = None,
           name: str = "the dataset") -> np.ndarray:  # fmt: skip
    """Indices (in dataset order) of the images a small-data run trains on: those of ``classes`` (all
    classes if None), the first ``per_class`` of each (balanced), then the first ``subset`` of what is
    left. :class:`UsageError` for a class the labels do not have, a ``per_class`` larger than a class,
    or a non-positive count."""
    for flag, value in (("--subset", subset), ("--per-class", per_class)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be positive, got {value}")
    present = sorted(int(c) for c in np.unique(labels))
    chosen = present if classes is None else list(dict.fromkeys(classes))
    if missing := [c for c in chosen if c not in present]:
        raise UsageError(f"--classes {', '.join(map(str, missing))} not in {name} (its classes: {present[0]}..{present[-1]})")
    keep = np.flatnonzero(np.isin(labels, chosen))
    if per_class is not None:
        parts = []
        for c in chosen:
            members = np.flatnonzero(labels == c)
            if per_class > len(members):
                raise UsageError(f"--per-class {per_class} exceeds the {len(members)} images of class {c} in {name}")
            parts.append(members[:per_class])
        keep = np.sort(np.concatenate(parts))
    return keep[:subset] if subset is not None else keep
