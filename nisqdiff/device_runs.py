"""Sampling runs on a device: its manifest, resume and interruption.

``nisqdiff sample`` calls :func:`open_run` (build the pipeline and the device from the options, or
from the manifest of an earlier run with ``resume``), then :mod:`nisqdiff.qpu_plan` (dry run, budget)
and :func:`execute`.
On the ``ibm`` device all images are one batch (one PUB per circuit with every image, so the number of
jobs is circuit stages x denoising steps whatever the number of images) and every job is recorded in
``OUT/manifest.json`` (:class:`~nisqdiff.devices.RunManifest`) as it is submitted and as it finishes;
an interruption leaves that manifest consistent and raises :class:`RunInterrupted`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .devices import IBMDevice, RunManifest, make_device
from .errors import CheckpointError, NisqdiffError, UsageError
from .files import atomic_write_text, check_writable
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


def open_run(run: SampleRun | None, out: Path, resume: Path | None = None, expect_arch: str | None = None):
    """(run, pipeline, device, manifest or None) of a new run, or with ``resume`` of the device run in
    that folder (its manifest's settings; the model must be unchanged). Builds and checks everything
    before anything is written; the manifest itself is created by :func:`execute`.
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
    if not isinstance(device, IBMDevice) and resume is not None:
        raise UsageError(f"--resume applies to device kind ibm, not '{run.device}'")
    pipe.set_executor(device)
    if isinstance(device, IBMDevice):
        run.batch_size = run.num  # one PUB per circuit with every image: jobs = stages x steps
        if manifest is None and (out / "manifest.json").exists():
            raise UsageError(f"{out / 'manifest.json'} exists: continue that run with --resume {out}, or choose another --out")
    return run, pipe, device, manifest


def execute(run: SampleRun, pipe: DiffusionPipeline, device, manifest: RunManifest | None, out: Path, batches=None):
    """Sample ``run`` through ``pipe`` on ``device`` -> (images (num, 1, 28, 28), metadata); ``batches``:
    only these (a rank's share, :func:`nisqdiff.distributed.my_batches`). On ``ibm``
    the run's manifest is created in ``out`` (or continued) and its summary goes into the metadata;
    Ctrl-C raises :class:`RunInterrupted` naming the kept jobs and the ``--resume`` command."""
    if isinstance(device, IBMDevice):
        if manifest is None:
            record = {**asdict(run), "source": str(Path(pipe.info["source"]).resolve()), "source_sha256": pipe.info["sha256"]}
            manifest = RunManifest.create(out, record, device.settings())
            # the calibration the run was planned with, for `nisqdiff calibration diff OUT/calibration.json NOW`
            atomic_write_text(out / "calibration.json", json.dumps(device.snapshot(), indent=1) + "\n")
        device.manifest = manifest
    try:
        with device:
            images, meta = pipe.generate(run.num, run.sampler, run.steps, run.eta, run.batch_size, run.seed, run.torch_device,
                                         batches=batches)  # fmt: skip
    except KeyboardInterrupt:
        if manifest is None:
            raise
        done = sum(j["status"] == "done" for j in manifest.data["jobs"])
        raise RunInterrupted(f"interrupted: {done} finished jobs are kept in {manifest.path}; continue with --resume {out}") from None
    if manifest is not None:
        meta["device"].update(manifest=str(manifest.path), jobs=len(manifest.data["jobs"]), jobs_submitted_now=device.jobs_submitted,
                              execution_mode_used=manifest.data.get("execution_mode_used"),
                              quantum_seconds_total=manifest.data.get("quantum_seconds_total"))
        manifest.set_status("done")
    return images, meta
