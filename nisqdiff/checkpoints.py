"""The model formats: training checkpoints (for ``--resume``) and pretrained folders (to share).

A **training checkpoint** is one ``torch.save`` file (``FORMAT``): architecture, training configuration
(with the diffusion schedule), model and EMA weights, optimiser state, step, wall time, RNG state, the
last metrics record and the training command. :func:`save_checkpoint` writes it atomically and
:func:`load_checkpoint` reads it back with checks; nothing else touches the layout.

A **pretrained folder** (``PRETRAINED_FORMAT``, as diffusers' ``save_pretrained``) is what a person
can read and share: ``config.json`` (architecture, schedule, training configuration, provenance:
dataset, steps, command, code version) and the EMA weights as ``model.safetensors``.
:func:`load_model` takes either and returns the EMA model, its schedule and its description.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict
import platform
from pathlib import Path

import torch

from . import __version__
from .diffusion import ScheduleConfig
from .errors import CheckpointError, reason
from .files import atomic_save, atomic_write, atomic_write_text, file_sha256, read_json
from .models import UNet, build_model, get_arch

FORMAT = "nisqdiff-checkpoint-1"
PRETRAINED_FORMAT = "nisqdiff-pretrained-1"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def code_version() -> dict:
    """nisqdiff's version, and the git commit of the source tree when it is a checkout."""
    import subprocess

    out = {"nisqdiff": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                                timeout=5)  # fmt: skip
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def save_checkpoint(path: str | os.PathLike, config: dict, model, ema_model, optimizer, step: int, wall_time: float,
                    metrics: dict, command: str | None, partial_epoch: dict | None = None) -> Path:  # fmt: skip
    """Write the training checkpoint of a run at ``step`` atomically (see the module doc). ``config``
    is the run's ``TrainConfig`` as a dict; the RNG state is torch's global CPU state now. ``metrics``
    is the last epoch's record; ``partial_epoch`` ({"losses": per-step losses so far, "wall0": wall
    seconds at the epoch's start}) is given for a checkpoint written before its epoch ended."""
    payload = {
        "format": FORMAT,
        "arch": config["arch"],
        "config": config,
        "model": model.state_dict(),
        "ema": ema_model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "wall_time": wall_time,
        "rng_state": torch.get_rng_state(),
        "metrics": metrics,
        "command": command,
    }
    if partial_epoch is not None:
        payload["partial_epoch"] = partial_epoch
    return atomic_save(payload, path)


def load_checkpoint(path: str | os.PathLike, expect_arch: str | None = None) -> dict:
    """Load a training checkpoint (a dict with ``format``, ``arch``, ``config``, ``model``, ``ema``, ...).

    ``config`` comes back in the current layout: checkpoints of earlier releases (``device`` for the
    torch device, no ``schedule``) are read as what they mean. Raises
    :class:`~nisqdiff.errors.CheckpointError` if the file is missing or unreadable, is not a nisqdiff
    checkpoint, lacks its weights, or holds another architecture than ``expect_arch`` (naming both).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        # torch's own text for a file that is not its zip archive (a bare opcode, or advice to pass
        # weights_only=False) misleads here
        why = "not a file torch.save wrote" if not zipfile.is_zipfile(path) else reason(exc)
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({why})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a nisqdiff checkpoint (expected format {FORMAT})")
    missing = [k for k in ("arch", "config", "model", "ema") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it is damaged or not a training checkpoint")
    if expect_arch is not None and ckpt["arch"] != expect_arch:
        raise CheckpointError(f"checkpoint {path} holds architecture '{ckpt['arch']}', expected '{expect_arch}'")
    config = dict(ckpt["config"])
    if "device" in config:  # releases before 0.1.0's pipeline called the torch device "device"
        config.setdefault("torch_device", config.pop("device"))
    config.setdefault("schedule", ScheduleConfig().to_dict())
    ckpt["config"] = config
    return ckpt


def save_pretrained(directory: str | os.PathLike, model: UNet, schedule: ScheduleConfig, training: dict,
                    provenance: dict) -> Path:  # fmt: skip
    """Write ``model``'s weights (the EMA weights of a trained model) and its description as a
    pretrained folder: ``model.safetensors`` and ``config.json`` (format, arch, architecture, schedule,
    training configuration, provenance with the code version). Both atomic; returns the folder."""
    from safetensors.torch import save as safetensors_bytes

    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = safetensors_bytes(state, metadata={"format": PRETRAINED_FORMAT, "arch": model.arch})
    atomic_write(directory / WEIGHTS_FILE, lambda fh: fh.write(blob))
    config = {
        "format": PRETRAINED_FORMAT,
        "arch": model.arch,
        "architecture": asdict(get_arch(model.arch)),
        "schedule": schedule.to_dict(),
        "training": training,
        "provenance": {**provenance, "weights_sha256": file_sha256(directory / WEIGHTS_FILE), "code": code_version()},
    }
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def _load_pretrained(directory: Path) -> tuple[dict, dict]:
    """(config, state dict) of a pretrained folder; :class:`~nisqdiff.errors.CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for p in (config_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"pretrained folder {directory} lacks {p.name}")
    config = read_json(config_path, CheckpointError, "pretrained config", PRETRAINED_FORMAT)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file: {exc}") from None
    return config, state


def load_model(source: str | os.PathLike, expect_arch: str | None = None) -> tuple[UNet, ScheduleConfig, dict]:
    """The EMA model (eval mode), its schedule and a description of ``source``: a training checkpoint
    file, a pretrained folder, or a zoo model's name (:func:`nisqdiff.model_zoo.resolve`). The description holds ``source``, ``kind`` (checkpoint or pretrained),
    ``arch``, ``dataset``, ``step``, ``sha256`` (of the weights file), the ``training`` configuration and
    the training ``command`` (None where it was not recorded).
    Raises :class:`~nisqdiff.errors.CheckpointError` for anything unreadable, another architecture than
    ``expect_arch``, or weights that do not fit the architecture."""
    from .model_zoo import resolve

    source = resolve(source)  # an existing path, or a zoo model by name (verified)
    if source.is_dir():
        config, state = _load_pretrained(source)
        arch, training, schedule = config.get("arch"), config.get("training", {}), config.get("schedule")
        step, command = config.get("provenance", {}).get("step"), config.get("provenance", {}).get("command")
        sha, kind = file_sha256(source / WEIGHTS_FILE), "pretrained"
    else:
        ckpt = load_checkpoint(source)
        arch, training, schedule, step, state = ckpt["arch"], ckpt["config"], ckpt["config"]["schedule"], ckpt["step"], ckpt["ema"]
        sha, kind, command = file_sha256(source), "checkpoint", ckpt.get("command")
    if expect_arch is not None and arch != expect_arch:
        raise CheckpointError(f"{source} holds architecture '{arch}', expected '{expect_arch}'")
    try:
        get_arch(arch)
        model = build_model(arch)
        model.load_state_dict(state)
    except (ValueError, RuntimeError) as exc:  # UsageError (unknown arch) or mismatched weights
        raise CheckpointError(f"{source}: weights do not fit architecture '{arch}': {reason(exc)}") from None
    try:
        schedule_config = ScheduleConfig.from_dict(schedule)
    except TypeError as exc:
        raise CheckpointError(f"{source}: unreadable schedule {schedule!r}: {exc}") from None
    info = {"source": str(source), "kind": kind, "arch": arch, "dataset": training.get("dataset", "mnist"),
            "step": step, "sha256": sha, "training": training, "command": command}  # fmt: skip
    return model.eval(), schedule_config, info
