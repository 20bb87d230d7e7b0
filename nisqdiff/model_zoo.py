"""The model zoo: trained models shipped with the package, usable by name wherever a model is asked for.

Each zoo model is a pretrained folder (``config.json``, ``model.safetensors``: the EMA weights, as
:func:`nisqdiff.checkpoints.save_pretrained` writes them) under ``nisqdiff/zoo/NAME/`` with its model card
``card.json`` (training command, seed, epochs, wall time, hardware, metrics with their backbone, and what is
not measured yet). ``nisqdiff models`` lists them.

**Names and paths.** Every ``--checkpoint`` takes a path or a zoo name. A path that exists wins (so a
folder called ``mnist-classical`` in the working directory is used as it is); ``zoo:NAME`` always means the
zoo. An argument that is neither names the zoo's models. The weights of a zoo model are checked against
the SHA-256 its config records before use: a missing or corrupt zoo file is an error naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import CheckpointError

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
PREFIX = "zoo:"


def names() -> list[str]:
    """The zoo's model names, sorted."""
    return sorted(p.name for p in ZOO_DIR.iterdir() if p.is_dir()) if ZOO_DIR.is_dir() else []


def folder(name: str) -> Path:
    """The verified pretrained folder of zoo model ``name``. :class:`~nisqdiff.errors.CheckpointError`
    for an unknown name (listing the zoo), a missing file, or weights that fail their recorded SHA-256."""
    from .files import file_sha256

    if name not in names():
        raise CheckpointError(f"no zoo model '{name}'; the zoo has: {', '.join(names()) or 'nothing'} (see `nisqdiff models`)")
    path = ZOO_DIR / name
    for file in ("config.json", "model.safetensors"):
        if not (path / file).is_file():
            raise CheckpointError(f"zoo model {name} lacks {path / file}; reinstall nisqdiff")
    try:
        expected = json.loads((path / "config.json").read_text())["provenance"]["weights_sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"zoo model {name}: {path / 'config.json'} is unreadable ({exc}); reinstall nisqdiff") from None
    if file_sha256(path / "model.safetensors") != expected:
        raise CheckpointError(f"zoo model {name}: {path / 'model.safetensors'} fails its SHA-256 check; reinstall nisqdiff")
    return path


def resolve(source: str | os.PathLike) -> Path:
    """The model a ``--checkpoint`` argument means: an existing path as it is, ``zoo:NAME`` or a bare
    zoo name as the zoo's verified folder (:func:`folder`). :class:`~nisqdiff.errors.CheckpointError` for
    anything else, naming the zoo's models."""
    text = os.fspath(source)
    if text.startswith(PREFIX):
        return folder(text[len(PREFIX) :])
    if Path(text).exists():
        return Path(text)
    if text in names():
        return folder(text)
    raise CheckpointError(f"checkpoint {text} does not exist, and no zoo model has that name (the zoo has: {', '.join(names()) or 'nothing'})")


def zoo_name(path: str | os.PathLike) -> str | None:
    """The zoo name of a resolved folder inside the zoo, else None."""
    path = Path(path).resolve()
    return path.name if path.parent == ZOO_DIR else None


def card(name: str) -> dict:
    """The model card of zoo model ``name`` (its ``card.json``; {} where it has none)."""
    path = ZOO_DIR / name / "card.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def describe() -> list[dict]:
    """One row per zoo model: name, arch, dataset, epochs (the card's: a transfer run's 19 + 1 is 20), step,
    seed, size in bytes, and the metrics its card records (``metrics`` of ``card.json``, or {} where none
    is measured)."""
    rows = []
    for name in names():
        path = ZOO_DIR / name
        config = json.loads((path / "config.json").read_text())
        training = config.get("training", {})
        rows.append({"name": name, "arch": config.get("arch"), "dataset": training.get("dataset"),
                     "epochs": card(name).get("epochs", training.get("epochs")), "step": config.get("provenance", {}).get("step"),
                     "seed": training.get("seed"), "bytes": (path / "model.safetensors").stat().st_size,
                     "metrics": card(name).get("metrics", {})})  # fmt: skip
    return rows
