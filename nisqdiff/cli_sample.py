"""``nisqdiff sample``: generate images on any device, with a run manifest and ``--resume``; on ``ibm``
with a dry run, a QPU budget and the runtime's primitives and options (:mod:`nisqdiff.device_runs`,
:mod:`nisqdiff.qpu_plan`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import List, Optional

import typer

from .cli_devices import CHECKPOINT_HELP
from .cli_errors import raise_usage

RUN_OPTIONS = ("resume", "out", "arch", "torch_device", "overwrite", "budget")  # what --resume still takes


def _runtime_options(resilience_level, rep_delay, runtime_option) -> dict | None:
    from .devices.runtime import parse_option

    options = dict(parse_option(text) for text in runtime_option or [])
    if resilience_level is not None:
        options["resilience_level"] = resilience_level
    if rep_delay is not None:
        options["execution.rep_delay"] = rep_delay * 1e-6
    return options or None


def sample(
    ctx: typer.Context,
    checkpoint: Optional[Path] = typer.Option(None, help=CHECKPOINT_HELP),
    num: int = typer.Option(64, "--num", "--num-images", help="images (--num-images under torchrun, whose --numa-binding takes --num)"),
    sampler: str = typer.Option("ddim", help="ddpm (all T steps of the schedule) or ddim"),
    steps: int = typer.Option(50, help="DDIM steps"),
    eta: float = typer.Option(0.0, help="DDIM eta (0 deterministic)"),
    batch_size: int = typer.Option(256, help="images per batch (device ibm: all images in one batch)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/samples")),
    arch: Optional[str] = typer.Option(None, help="fail unless the checkpoint holds this architecture"),
    device: str = typer.Option("noiseless", help="device profile or .toml file where the circuits run (`nisqdiff devices`)"),
    shots: Optional[int] = typer.Option(None, help="shots per circuit execution [default: the profile's]"),
    device_seed: Optional[int] = typer.Option(None, help="seed of the device's shot sampling [default: the profile's]"),
    calibration: Optional[str] = typer.Option(None, help="calibration snapshot for aer-noisy, emulator (`nisqdiff calibration list`)"),
    noise_scale: Optional[float] = typer.Option(None, help="aer-noisy, emulator: multiplies every error rate (0 ideal) [default 1]"),
    method: Optional[str] = typer.Option(
        None, help="emulator: exact (exact noisy <Z>, binomial shots) or trajectories; aer-noisy: Aer's method"
    ),
    trajectories: Optional[int] = typer.Option(None, help="emulator trajectories method: trajectories per input [default 32]"),
    zne: Optional[str] = typer.Option(None, help="emulator: zero-noise extrapolation over these noise factors, e.g. 1,2,3"),
    zne_extrapolator: Optional[str] = typer.Option(None, help="emulator: richardson (default), linear, exponential or polynomial_degree_K"),
    mitigate_readout: bool = typer.Option(False, help="invert the readout assignment matrices (aer-noisy, emulator, ibm sampler)"),
    m3: bool = typer.Option(False, "--m3", help="device ibm, sampler: M3 readout mitigation, calibrated on the device at run time"),
    pl_device: Optional[str] = typer.Option(None, help="device pennylane: an installed PennyLane device, e.g. lightning.qubit"),
    pl_option: Optional[List[str]] = typer.Option(None, help="device pennylane: a qml.device argument KEY=VALUE (repeatable)"),
    backend: Optional[str] = typer.Option(None, help="device ibm: IBM backend name, or fake_* for local testing mode"),
    primitive: Optional[str] = typer.Option(None, help="device ibm: sampler (bits) or estimator (<Z> with IBM's mitigation)"),
    resilience_level: Optional[int] = typer.Option(None, help="device ibm, estimator: the runtime's resilience_level (0, 1, 2)"),
    rep_delay: Optional[float] = typer.Option(None, help="device ibm: repetition delay in us, within the backend's range"),
    runtime_option: Optional[List[str]] = typer.Option(
        None, help="device ibm: a runtime primitive option KEY=VALUE, named as the runtime names it, e.g. "
        "resilience.zne_mitigation=true (repeatable)"
    ),
    plan: Optional[str] = typer.Option(None, help="device ibm: your IBM plan: open (default), pay-as-you-go, flex, premium"),
    execution_mode: Optional[str] = typer.Option(None, help="device ibm: auto (default: session, or job where refused), session, batch, job"),
    job_timeout: Optional[float] = typer.Option(None, help="device ibm: seconds to wait for one job [default 3600]"),
    budget: Optional[float] = typer.Option(None, help="device ibm: refuse a run whose QPU time estimate exceeds this many seconds"),
    dry_run: bool = typer.Option(False, help="device ibm: print what would be submitted and the QPU time estimate"),
    resume: Optional[Path] = typer.Option(None, help="continue the interrupted run in this folder (its manifest's settings)"),
    torch_device: str = typer.Option("cpu", help="torch device for the classical layers, the simulator and the emulator"),
    overwrite: bool = typer.Option(False, help="replace the samples (or an unfinished local run) already in --out"),
    distributed: bool = typer.Option(False, help="one of torchrun's processes: the batches split over them, gathered on rank 0"),
    noise_source: str = typer.Option("pseudo", help="the sampling noise: pseudo (torch) or pool:POOL (`nisqdiff qrng`)"),
    precision: str = typer.Option("fp32", help="fp32, or bf16: the classical layers under bf16 autocast (docs/performance.md)"),
):
    """Generate images with the EMA weights; writes samples.pt, samples.png, samples.json and manifest.json
    (the run's settings; on device ibm also every job id as it is submitted); --resume continues an interrupted run."""
    from .device_runs import SampleRun, drop_batches, execute, open_run
    from .devices import IBMDevice, load_profile
    from .devices.runtime import parse_option
    from .devices.zne import parse_factors
    from .files import RunLock, atomic_save, atomic_write_text
    from .images import save_grid
    from .distributed import gather_images, init, my_batches
    from .qpu_plan import check_budget, describe_plan
    from .qrng import parse_source

    run = None
    if resume is not None:
        given = [f"--{name.replace('_', '-')}" for name in ctx.params
                 if name not in RUN_OPTIONS and ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")]  # fmt: skip
        if given:
            raise_usage(f"--resume takes every setting from the run's manifest; drop {', '.join(given)}")
        out = resume
    else:
        if checkpoint is None:
            raise_usage("--checkpoint is required (or --resume DIR of an earlier sampling run)")
        if m3 and mitigate_readout:
            raise_usage("--m3 and --mitigate-readout are two readout mitigations; choose one")
        if zne_extrapolator is not None and zne is None and not load_profile(device).get("zne"):
            raise_usage("--zne-extrapolator applies with --zne FACTORS (e.g. --zne 1,2,3)")
        options = {
            "shots": shots, "seed": device_seed, "calibration": calibration, "noise_scale": noise_scale,
            "trajectories": trajectories, "mitigate_readout": "m3" if m3 else (mitigate_readout or None), "backend": backend,
            "method": method, "zne": parse_factors(zne), "zne_extrapolator": zne_extrapolator,
            "execution_mode": execution_mode, "job_timeout": job_timeout, "primitive": primitive, "plan": plan,
            "runtime_options": _runtime_options(resilience_level, rep_delay, runtime_option), "pl_device": pl_device,
            "pl_options": dict(parse_option(text, "--pl-option") for text in pl_option) if pl_option else None,
        }  # fmt: skip
        if torch_device != "cpu" and load_profile(device)["kind"] == "emulator":
            options["torch_device"] = torch_device  # the emulator runs its trajectories there too
        run = SampleRun(str(checkpoint), num, sampler, steps, eta, seed, batch_size, device, options, torch_device, noise_source,
                        precision)
    run, pipe, qdevice, manifest = open_run(run, out, resume, expect_arch=arch, overwrite=overwrite)
    is_ibm = isinstance(qdevice, IBMDevice)
    for flag, value in (("--dry-run", dry_run), ("--budget", budget)):
        if value and not is_ibm:
            raise_usage(f"{flag} applies to device kind ibm, not '{run.device}'")
    if is_ibm:
        qpu_plan = check_budget(pipe, qdevice, run.num, pipe.steps_per_batch(run.sampler, run.steps), budget, run.sampler)
        if dry_run:
            for line in describe_plan(qpu_plan, pipe.arch, run.num, run.sampler):
                typer.echo(line)
            return
    if (out / "samples.pt").exists() and not overwrite:
        raise_usage(f"{out} already holds samples; pass --overwrite to replace them or choose another --out")
    if distributed and is_ibm:
        raise_usage("--distributed does not apply to device ibm: its images are one batch of jobs")
    pool = parse_source(run.noise_source)
    pool_record = pipe.use_noise_pool(pool, f"{out.resolve()}:sample", run.num, run.sampler, run.steps, run.eta,
                                      run.batch_size) if pool is not None else None  # fmt: skip
    dist = init(run.torch_device) if distributed else None
    if dist is not None:
        run.torch_device = dist.torch_device  # cuda: this rank's GPU
    try:
        with RunLock(out) if dist is None or dist.main else contextlib.nullcontext():
            batches = my_batches(run.num, run.batch_size, dist) if dist is not None else None
            images, meta = execute(run, pipe, qdevice, manifest, out, batches)
            if dist is not None and (gathered := gather_images(images, meta, run.num, run.batch_size, dist)) is None:
                return  # rank 0 writes
            if dist is not None:
                images, meta = gathered
            if pool_record is not None:
                meta["noise_source"] = pool_record
            atomic_save({"images": images, "meta": meta}, out / "samples.pt")
            save_grid(images[:64], out / "samples.png")
            atomic_write_text(out / "samples.json", json.dumps(meta, indent=2) + "\n")
            drop_batches(out)
    finally:
        if dist is not None:
            dist.close()
    typer.echo(json.dumps(meta))
