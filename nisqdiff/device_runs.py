"""Sampling runs on a device: their manifest, resume and interruption.

``nisqdiff sample`` calls :func:`open_run` (build the pipeline and the device from the options, or
from the manifest of an earlier run with ``resume``), then :mod:`nisqdiff.qpu_plan` (dry run, budget)
and :func:`execute`.
On every local device (simulators, emulator, Aer, PennyLane) the run's settings go into
``OUT/manifest.json`` and each batch of images into ``OUT/batches/batch_NNNN.pt`` as it finishes, so
that ``--resume OUT`` continues an interrupted run with the batches that are missing (each batch's images
depend only on the seeds and its index, so a resumed run's images equal an uninterrupted one's); the
batch files are removed once ``samples.pt`` holds them all.
On the ``ibm`` device all images are one batch (one PUB per circuit with every image, so the number of
jobs is circuit stages x denoising steps whatever the number of images) and every job is recorded in
``OUT/manifest.json`` (:class:`~nisqdiff.devices.RunManifest`) as it is submitted and as it finishes;
an interruption leaves that manifest consistent and raises :class:`RunInterrupted`.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .circuits import merge_summaries
from .devices import IBMDevice, RunManifest, make_device
from .errors import CheckpointError, NisqdiffError, UsageError
from .files import atomic_save, atomic_write_text, check_writable
from .pipeline import DiffusionPipeline, check_torch_device


class RunInterrupted(NisqdiffError):
    """A device run stopped by Ctrl-C; the message says what was kept and how to resume (exit 130)."""


@dataclass
class SampleRun:
    """What a sampling run is: the model ``source`` (checkpoint or pretrained folder), the sampling
    settings, the device profile and its option overrides (``None`` values: the profile's)."""

    source: str
    num: int = 64
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    seed: int = 0
    batch_size: int = 256
    device: str = "noiseless"
    device_options: dict = field(default_factory=dict)
    torch_device: str = "cpu"
    noise_source: str = "pseudo"  # or pool:PATH (a quantum noise pool, nisqdiff.qrng)
    precision: str = "fp32"  # or bf16: the classical layers under bf16 autocast (DiffusionPipeline.precision)


def open_run(run: SampleRun | None, out: Path, resume: Path | None = None, expect_arch: str | None = None,
             overwrite: bool = False):
    """(run, pipeline, device, manifest or None) of a new run, or with ``resume`` of the device run in
    that folder (its manifest's settings; the model must be unchanged). Builds and checks everything
    before anything is written; the manifest itself is created by :func:`execute`. A folder with the
    manifest of an unfinished run is refused unless ``resume`` (or, on a local device, ``overwrite``).
    :class:`~nisqdiff.errors.UsageError` / :class:`~nisqdiff.errors.DeviceError` /
    :class:`~nisqdiff.errors.CheckpointError` for what cannot run."""
    manifest = None
    if resume is None:
        check_torch_device(run.torch_device)
        check_writable(out)
    else:
        manifest = RunManifest.load(resume)
        stored = dict(manifest.data["run"])
        if "checkpoint" in stored:  # a manifest of the previous release
            stored["source"], stored["source_sha256"] = stored.pop("checkpoint"), stored.pop("checkpoint_sha256")
        run = SampleRun(**{k: v for k, v in stored.items() if k in SampleRun.__dataclass_fields__})
        if not Path(run.source).exists():  # a resolved path is recorded, also for a zoo model
            raise CheckpointError(f"model {run.source} of the run in {resume} is missing")
    pipe = DiffusionPipeline.from_pretrained(run.source, expect_arch=expect_arch)
    if manifest is not None and pipe.info["sha256"] != stored["source_sha256"]:
        raise CheckpointError(f"model {run.source} of the run in {resume} has changed since the run started")
    pipe.precision = run.precision
    pipe.check(run.num, run.sampler, run.steps, run.eta, run.batch_size, run.seed)
    device = make_device(run.device, **{k: v for k, v in run.device_options.items() if v is not None})
    pipe.set_executor(device)
    is_ibm = isinstance(device, IBMDevice)
    if is_ibm:
        run.batch_size = run.num  # one PUB per circuit with every image: jobs = stages x steps
    if manifest is None and (out / "manifest.json").exists() and (is_ibm or not overwrite):
        finished = RunManifest.load(out).data.get("status") == "done" and (out / "samples.pt").exists()
        how = "" if is_ibm else " or pass --overwrite to replace it"
        if finished:
            raise UsageError(f"{out} holds a finished sampling run{how}, or choose another --out")
        raise UsageError(f"{out} holds an unfinished sampling run: continue it with --resume {out}{how}, or choose another --out")
    return run, pipe, device, manifest


def batch_file(out: Path, b: int) -> Path:
    """Where a local run keeps batch ``b`` until ``samples.pt`` holds every batch."""
    return out / "batches" / f"batch_{b:04d}.pt"


def execute(run: SampleRun, pipe: DiffusionPipeline, device, manifest: RunManifest | None, out: Path, batches=None):
    """Sample ``run`` through ``pipe`` on ``device`` -> (images (num, 1, 28, 28), metadata); ``batches``:
    only these (a rank's share, :func:`nisqdiff.distributed.my_batches`; nothing is kept for resuming).
    Otherwise the run's manifest is created in ``out`` (or continued): on ``ibm`` every job is recorded
    and the manifest's summary goes into the metadata; on a local device every finished batch is kept
    (:func:`batch_file`) and only the missing ones run, their device counts and seconds summed with the
    kept ones'. Ctrl-C raises :class:`RunInterrupted` naming what was kept and the ``--resume`` command."""
    is_ibm = isinstance(device, IBMDevice)
    if manifest is None and (is_ibm or batches is None):
        if (out / "manifest.json").exists():  # --overwrite of an unfinished local run (open_run refused the rest)
            (out / "manifest.json").unlink()
            shutil.rmtree(out / "batches", ignore_errors=True)
        record = {**asdict(run), "source": str(Path(pipe.info["source"]).resolve()), "source_sha256": pipe.info["sha256"]}
        manifest = RunManifest.create(out, record, device.settings())
        if is_ibm:  # the calibration the run was planned with, for `nisqdiff calibration diff OUT/calibration.json NOW`
            atomic_write_text(out / "calibration.json", json.dumps(device.snapshot(), indent=1) + "\n")
    if is_ibm:
        device.manifest = manifest
    keep = manifest is not None and not is_ibm
    n_batches = math.ceil(run.num / run.batch_size)
    if keep:
        batches = [b for b in range(n_batches) if not batch_file(out, b).is_file()]
    try:
        with device:
            images, meta = pipe.generate(run.num, run.sampler, run.steps, run.eta, run.batch_size, run.seed, run.torch_device,
                                         batches=batches, on_batch=_keeper(out) if keep else None)  # fmt: skip
    except KeyboardInterrupt:
        if manifest is None:
            raise
        if keep:
            done = sum(batch_file(out, b).is_file() for b in range(n_batches))
            what = f"{done} of {n_batches} batches are kept in {out / 'batches'}"
        else:
            what = f"{sum(j['status'] == 'done' for j in manifest.data['jobs'])} finished jobs are kept in {manifest.path}"
        raise RunInterrupted(f"interrupted: {what}; continue with --resume {out}") from None
    if keep:
        records = [torch.load(batch_file(out, b), weights_only=True) for b in range(n_batches)]
        images = torch.cat([r["images"] for r in records])
        meta["device"] = merge_summaries([r["device"] for r in records], meta["device"])
        meta["wall_time_s"] = round(sum(r["seconds"] for r in records), 2)
        if len(batches) < n_batches:
            meta["resumed_batches"] = n_batches - len(batches)  # sampled by an earlier, interrupted invocation
    elif manifest is not None:
        meta["device"].update(manifest=str(manifest.path), jobs=len(manifest.data["jobs"]), jobs_submitted_now=device.jobs_submitted,
                              execution_mode_used=manifest.data.get("execution_mode_used"),
                              quantum_seconds_total=manifest.data.get("quantum_seconds_total"))
    if manifest is not None:
        manifest.set_status("done")
    return images, meta


def _keeper(out: Path):
    def keep(b: int, images: torch.Tensor, device: dict, seconds: float) -> None:
        atomic_save({"images": images, "device": device, "seconds": seconds}, batch_file(out, b))

    return keep


def drop_batches(out: Path) -> None:
    """Remove a finished local run's batch files (call once ``samples.pt`` holds them)."""
    shutil.rmtree(out / "batches", ignore_errors=True)
