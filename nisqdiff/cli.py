"""The ``nisqdiff`` command line (typer): archs, train, sample, export, evaluate, report, and the
``calibration`` and ``devices`` groups of :mod:`nisqdiff.cli_devices`. Errors are handled as
:mod:`nisqdiff.cli_errors` says."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

import typer

from .cli_devices import CHECKPOINT_HELP, calibration_app, devices_app
from .cli_qrng import qrng
from .cli_sample import sample
from .cli_errors import friendly_errors, raise_usage

MAX_THREADS = 256  # torch's OpenMP pool crashes (not an error) far beyond the machine's cores

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None,
    help="Quantum-hybrid diffusion U-Nets on simulators and NISQ devices.",
)  # fmt: skip


def _echo_json_lines(rows: list[dict]) -> None:
    for r in rows:
        typer.echo(json.dumps(r))


@app.command()
@friendly_errors
def archs(as_json: bool = typer.Option(False, "--json", help="print JSON lines instead of a table")):
    """List the architectures: trainable parameters (against the paper), circuits, qubits per circuit."""
    from .models import ARCHS, arch_summary

    rows = [arch_summary(a) for a in ARCHS]
    if as_json:
        _echo_json_lines(rows)
        return
    typer.echo(f"{'arch':<16} {'params':>9} {'paper':>9} {'diff':>6} {'circuits':>8} {'qubits':>7}")
    for r in rows:
        paper = f"{r['paper_params']:,}" if r["paper_params"] else "-"
        diff = f"{r['params'] - r['paper_params']:+d}" if r["paper_params"] else "-"
        qubits = "/".join(map(str, r["qubits"])) or "-"
        typer.echo(f"{r['arch']:<16} {r['params']:>9,} {paper:>9} {diff:>6} {r['circuits']:>8} {qubits:>7}")
    typer.echo("circuits: per image and forward pass at the vertex; quanv adds one circuit per 2x2 patch (49) at level 1.")
    typer.echo("bottleneck, qbottleneck, bottleneck-const: Chen et al.'s lightweight U-Net (no printed counts); options in "
               "the name: -q<qubits> (2-20), -l<layers> (qbottleneck, 1-10), -rgb (colour MedMNIST), e.g. qbottleneck-q16-rgb.")


@app.command()
@friendly_errors
def models(
    name: Optional[str] = typer.Argument(None, help="a zoo model: print its card"),
    as_json: bool = typer.Option(False, "--json", help="print JSON lines instead of a table"),
):
    """List the zoo's trained models (every --checkpoint takes their names), or print one model's card."""
    from . import model_zoo

    if name is not None:
        typer.echo(json.dumps({"name": name, "folder": str(model_zoo.folder(name)), **model_zoo.card(name)}, indent=2))
        return
    rows = model_zoo.describe()
    if as_json:
        _echo_json_lines(rows)
        return
    typer.echo(f"{'name':<26} {'arch':<12} {'dataset':<9} {'epochs':>6} {'seed':>4} {'MB':>5}  metrics")
    for r in rows:
        m = r["metrics"]
        metrics = (f"FID[{m.get('backbone')}] {m['fid']:.2f}" + (" [{:.2f}, {:.2f}]".format(*m["fid_95ci"]) if m.get("fid_95ci") else "")
                   + f", {m.get('images')} images, {m.get('sampler')}") if "fid" in m else "not measured yet"  # fmt: skip
        typer.echo(f"{r['name']:<26} {r['arch']:<12} {r['dataset']:<9} {r['epochs']:>6g} {r['seed']:>4} {r['bytes'] / 1e6:>5.1f}  {metrics}")
    typer.echo("use a name wherever a model is asked for, e.g. nisqdiff sample --checkpoint NAME; `nisqdiff models NAME` prints its card.")


@app.command()
@friendly_errors
def train(
    arch: Optional[str] = typer.Option(None, help="architecture (see `nisqdiff archs`) [default: 1hqconv, or the resumed run's]"),
    dataset: str = typer.Option("mnist", help="mnist, fashion-mnist or a grey MedMNIST set (pneumoniamnist, organamnist, ...)"),
    epochs: Optional[float] = typer.Option(
        None, help="epochs (passes over the training set) [default: 20, or the resumed run's]"
    ),
    max_steps: Optional[int] = typer.Option(None, help="stop after this many optimiser steps"),
    batch_size: int = typer.Option(128),
    subset: Optional[int] = typer.Option(None, help="train on the first N images (of the chosen classes)"),
    classes: Optional[str] = typer.Option(None, help="train on these classes only, e.g. 3 (one digit) or 0,1,2"),
    per_class: Optional[int] = typer.Option(None, help="the first K images of each class (balanced small data)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/train"), help="run directory"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with mnist/ and fashion-mnist/ IDX files"),
    resume: bool = typer.Option(False, help="continue the run in --out from its checkpoint"),
    overwrite: bool = typer.Option(False, help="replace a run already in --out"),
    init_from: Optional[Path] = typer.Option(
        None, help="classical checkpoint (training weights) or pretrained folder (EMA weights) whose encoder/decoder to copy"
    ),
    freeze_classical: bool = typer.Option(False, help="train only the circuits (seed 002's transfer variant)"),
    grid_images: int = typer.Option(16, help="EMA samples in each epoch's PNG grid (0: none)"),
    amp: Optional[bool] = typer.Option(
        None, "--amp/--no-amp", show_default=False,
        help="bf16 autocast for convolutions and matmuls (fp32 weights, loss, circuits) [default: on where the device "
        "has native bf16 (AVX512-BF16/AMX CPUs, bf16 GPUs), off elsewhere; on --resume, the run's own]",
    ),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads"),
    torch_device: str = typer.Option("cpu", help="torch device for training (cpu, cuda, cuda:1, ...)"),
    schedule: Optional[str] = typer.Option(None, help="noise schedule: cosine (the paper's), linear, sigmoid, shifted-cosine [default: cosine]"),
    timesteps: Optional[int] = typer.Option(None, help="diffusion steps T, saved with the model [default: 1000]"),
    logsnr_shift: Optional[float] = typer.Option(None, help="shifted-cosine: added to the log-SNR (+1.65 for 28x28: 2 ln(64/28))"),
    distributed: bool = typer.Option(False, help="one of torchrun's processes: DistributedDataParallel, gloo on CPU, NCCL on CUDA"),
    noise_source: str = typer.Option("pseudo", help="the forward process's noise: pseudo (torch) or pool:POOL (`nisqdiff qrng`)"),
    checkpoint_minutes: float = typer.Option(
        0.0, help="also checkpoint mid-epoch every this many minutes, so that a kill loses less (0: epoch ends only; give it again on --resume)"
    ),
):
    """Train a (hybrid) U-Net with DDPM, P2 loss and EMA; checkpoints and sample grids every epoch."""
    import torch

    from .diffusion import ScheduleConfig
    from .pipeline import check_torch_device
    from .training import TrainConfig, train as run_training

    schedule_options = {k: v for k, v in {"schedule": schedule, "timesteps": timesteps, "logsnr_shift": logsnr_shift}.items()
                        if v is not None}  # fmt: skip
    if resume and schedule_options:
        raise_usage(f"--resume keeps the run's schedule; drop --{', --'.join(k.replace('_', '-') for k in schedule_options)}")
    if "logsnr_shift" in schedule_options and schedule_options.get("schedule") != "shifted-cosine":
        raise_usage("--logsnr-shift applies to --schedule shifted-cosine only")

    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise_usage(f"--threads must be in [1, {MAX_THREADS}], got {threads}")
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        arch=arch or (None if resume else "1hqconv"),
        dataset=dataset,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        subset=subset,
        classes=_class_list(classes),
        per_class=per_class,
        seed=seed,
        init_from=str(init_from) if init_from else None,
        freeze_classical=freeze_classical,
        grid_images=grid_images,
        amp=amp,
        torch_device=torch_device,
        schedule=ScheduleConfig(**schedule_options).to_dict(),
        noise_source=noise_source,
        checkpoint_minutes=checkpoint_minutes,
    )
    dist = None
    if distributed:
        from .distributed import init

        dist = init(check_torch_device(torch_device))
    try:
        record = run_training(cfg, out, data_dir=str(data_dir) if data_dir else None, resume=resume, overwrite=overwrite, dist=dist)
    finally:
        if dist is not None:
            dist.close()
    if dist is None or dist.main:
        typer.echo(json.dumps(record))


def _class_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise_usage(f"--classes takes comma-separated class indices, e.g. 3 or 0,1,2; got {text!r}")


app.command()(friendly_errors(sample))


@app.command()
@friendly_errors
def export(
    checkpoint: Path = typer.Option(..., help="training checkpoint whose EMA weights to export"),
    out: Path = typer.Option(..., help="pretrained folder to write (config.json, model.safetensors)"),
    overwrite: bool = typer.Option(False, help="replace a pretrained folder already in --out"),
):
    """Write a model as a pretrained folder: config.json (architecture, schedule, training configuration,
    provenance) and its EMA weights as model.safetensors; every command that takes --checkpoint reads it."""
    from .checkpoints import CONFIG_FILE
    from .files import RunLock, check_writable
    from .pipeline import DiffusionPipeline

    check_writable(out)
    if (out / CONFIG_FILE).exists() and not overwrite:
        raise_usage(f"{out} already holds a pretrained model; pass --overwrite to replace it")
    pipe = DiffusionPipeline.from_pretrained(checkpoint)
    with RunLock(out):
        pipe.save_pretrained(out)
    typer.echo(f"{out}: {pipe.arch}, step {pipe.info['step']}, schedule T={pipe.schedule.timesteps} {pipe.schedule.schedule}")


@app.command()
@friendly_errors
def evaluate(
    checkpoint: Optional[Path] = typer.Option(None, help="sample from this model (" + CHECKPOINT_HELP + "), then evaluate"),
    samples: Optional[Path] = typer.Option(None, help="samples.pt written by `nisqdiff sample`"),
    num: int = typer.Option(7000, help="images to generate with --checkpoint (the paper: 7,000)"),
    backbone: str = typer.Option("classifier", help="classifier (shipped, per dataset) or inception"),
    inception_weights: Optional[Path] = typer.Option(None, help="TorchScript InceptionV3 (inception-2015-12-05.pt)"),
    dataset: Optional[str] = typer.Option(None, help="reference dataset (default: the model's)"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the IDX files"),
    num_real: Optional[int] = typer.Option(None, help="first N training images as reference (default: all)"),
    classes: Optional[str] = typer.Option(
        None, help="reference images of these classes only, e.g. 3 [default: the classes the model was trained on]"
    ),
    sampler: str = typer.Option("ddim"),
    steps: int = typer.Option(50),
    eta: float = typer.Option(0.0),
    batch_size: int = typer.Option(256),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="metrics JSON (default: beside the samples/checkpoint; runs/zoo-eval/NAME/ for a zoo model)"),
    precision: str = typer.Option("fp32", help="with --checkpoint: fp32, or bf16 (the classical layers under bf16 autocast)"),
    bootstrap: int = typer.Option(0, help="resamples for a 95% bootstrap interval of FID (0: none; 100 for a table)"),
):
    """FID, KID (subset 100) and IS (10 splits) against the training set, with the backbone recorded."""
    from .data import check_dataset, load_images
    from .files import atomic_write_text, check_writable
    from .metrics import compute_metrics, load_backbone
    from .pipeline import DiffusionPipeline

    if (checkpoint is None) == (samples is None):
        raise_usage("give exactly one of --checkpoint or --samples")
    if num_real is not None and num_real < 2:
        raise_usage(f"--num-real must be at least 2, got {num_real}")
    if bootstrap < 0:
        raise_usage(f"--bootstrap must be 0 or more resamples, got {bootstrap}")
    if samples is not None and precision != "fp32":
        raise_usage("--precision applies with --checkpoint (the samples are already made)")
    if out is not None:
        check_writable(out, "file")
    if samples is not None:
        from .images import load_samples

        images, meta = load_samples(samples)
        model_dataset, training = None, {}
        if meta.get("checkpoint") and Path(meta["checkpoint"]).exists():
            info = DiffusionPipeline.from_pretrained(meta["checkpoint"]).info
            model_dataset, training = info["dataset"], info.get("training") or {}
        default_out = samples.with_name("metrics.json")
    else:
        pipe = DiffusionPipeline.from_pretrained(checkpoint)
        pipe.precision = precision
        pipe.check(num, sampler, steps, eta, batch_size, seed)
        if num < 2:
            raise_usage(f"--num must be at least 2 for FID, got {num}")
        model_dataset, training = pipe.info["dataset"], pipe.info.get("training") or {}
        from .model_zoo import zoo_name

        source = Path(pipe.info["source"])
        zoo = zoo_name(source)  # not inside the installed package: under runs/zoo-eval/
        default_out = Path("runs/zoo-eval") / zoo / "metrics_eval.json" if zoo else \
            (source if source.is_dir() else source.parent) / "metrics_eval.json"  # fmt: skip
    ref = check_dataset(dataset or model_dataset or "mnist")
    inception = str(inception_weights) if inception_weights else None
    load_backbone(backbone, ref, inception)  # a bad backbone or missing data fails before any sampling
    chosen = _class_list(classes) if classes is not None else (training.get("classes") if ref == model_dataset else None)
    real, _ = load_images(ref, "train", str(data_dir) if data_dir else None, num_real, classes=chosen)  # before sampling
    if checkpoint is not None:
        images, meta = pipe.generate(num, sampler, steps, eta, batch_size, seed)
    result = compute_metrics(images, real, backbone, ref, inception, bootstrap=bootstrap)
    result.update({"dataset": ref, "reference_classes": chosen, "samples": meta})
    atomic_write_text(out or default_out, json.dumps(result, indent=2) + "\n")
    b = result["backbone"]["name"]
    ci = f" [{result['fid_ci_low']:.3f}, {result['fid_ci_high']:.3f}]" if bootstrap else ""
    typer.echo(
        f"FID[{b}] {result['fid']:.3f}{ci}  KID[{b}] {result['kid_mean']:.5f} +- {result['kid_std']:.5f}  "
        f"IS[{b}] {result['is_mean']:.3f} +- {result['is_std']:.3f}  ({result['num_fake']} vs {result['num_real']} "
        f"{ref} images{' of classes ' + ','.join(map(str, chosen)) if chosen else ''}) -> {out or default_out}"
    )


@app.command()
@friendly_errors
def report(
    checkpoint: Optional[Path] = typer.Option(None, help="model to study: " + CHECKPOINT_HELP),
    devices: str = typer.Option(
        "noiseless,shots:128,shots:1024,shots:8192,emulator:fake_sherbrooke@0.5,emulator:fake_sherbrooke@1,"
        "emulator:fake_sherbrooke@2",
        help="comma-separated settings: noiseless | depolarized | shots:SHOTS | "
        "emulator:CAL@SCALE[/SHOTS][+readout][+zne] | aer-noisy:CAL@SCALE[/SHOTS][+readout]",
    ),
    num: int = typer.Option(500, "--num", "--num-images", help="images per setting (--num-images under torchrun)"),
    steps: int = typer.Option(20, help="DDIM steps"),
    eta: float = typer.Option(0.0, help="DDIM eta"),
    seed: int = typer.Option(0, help="sampling and device seed, the same for every setting"),
    batch_size: int = typer.Option(100, help="images per batch (the unit of resumption)"),
    shots: int = typer.Option(1024, help="shots of noisy settings that do not give /SHOTS"),
    trajectories: int = typer.Option(8, help="emulator trajectories per input"),
    out: Path = typer.Option(Path("runs/report"), help="study folder (resumed when it holds the same study)"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with the IDX files (reference images)"),
    num_real: int = typer.Option(10000, help="training images used as the FID/KID reference"),
    bootstrap: int = typer.Option(50, help="bootstrap resamples for the FID intervals (0: none)"),
    backbone: str = typer.Option("classifier", help="classifier (shipped, per dataset) or inception"),
    inception_weights: Optional[Path] = typer.Option(None, help="TorchScript InceptionV3 (inception-2015-12-05.pt)"),
    render: Optional[Path] = typer.Option(None, help="only redraw the tables, plots and report.md of this finished study"),
    distributed: bool = typer.Option(False, help="one of torchrun's processes: the batches split over them, rank 0 scores"),
):
    """Sample the same seeds on every device setting, then FID/KID/IS with intervals, plots, grids,
    per-circuit statistics and report.md in --out. An interrupted study resumes from its last batch;
    --render DIR redraws a finished study without sampling or scoring."""
    from .devices import parse_settings
    from .report import render_report
    from .study import plan_study, run_study

    from .files import RunLock

    if render is not None:
        if not (render / "study.json").is_file():
            raise_usage(f"{render} holds no study.json: --render needs the --out folder of a finished study")
        with RunLock(render):
            typer.echo(f"report: {render_report(render)}")
        return
    specs = parse_settings(devices, shots)
    if checkpoint is None:
        raise_usage("--checkpoint is required (or --render DIR of a finished study)")
    inception = str(inception_weights) if inception_weights else None
    plan = plan_study(checkpoint, specs, out, num, steps, seed, batch_size, shots, trajectories, eta,
                      str(data_dir) if data_dir else None, num_real, backbone, bootstrap, inception)  # fmt: skip
    dist = None
    if distributed:
        from .distributed import init

        dist = init("cpu")
    try:
        with RunLock(out) if dist is None or dist.main else contextlib.nullcontext():
            result = run_study(plan, dist)
            if result is None:
                return  # rank 0 scores and reports
            report_md = render_report(out)
    finally:
        if dist is not None:
            dist.close()
    for r in result["settings"]:
        typer.echo(f"{r['setting']:<40} FID {r['fid']:8.2f}  KID {r['kid_mean']:.4f}  IS {r['is_mean']:.2f}")
    typer.echo(f"report: {report_md}")


app.command()(friendly_errors(qrng))
app.add_typer(calibration_app, name="calibration")
app.add_typer(devices_app, name="devices")
