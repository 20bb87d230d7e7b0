"""The noise-degradation study behind ``nisqdiff report``: sample every device setting, resumably, then score.

One model is sampled on every device setting (:class:`~nisqdiff.devices.DeviceSpec`, parsed from the
grammar of :data:`nisqdiff.devices.factory.GRAMMAR`) with the same seeds (the same initial noise and,
for eta > 0, the same per-step noise), so differences between settings come from the device alone.
Each setting's images are saved per batch as they finish (``settings/<slug>/batch_NNN.pt``: the images,
the device's record of that batch and its seconds, in one atomic file), so an interrupted study resumes
at the first missing batch; ``study.json`` records what the study is (model hash, images, steps, seed,
torch version and threads, ...) and a folder holding another study is refused. When every batch
exists, :func:`evaluate_study` writes ``metrics.json`` (FID/KID/IS with intervals against the training
set, pixel RMSE to noiseless, mean standard error, seconds) and ``circuits.json`` (per-circuit
two-qubit gates and estimated success probability on each calibration), and
:func:`nisqdiff.report.render_report` draws the tables and plots from them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .devices import DeviceSpec
from .errors import StudyError
from .files import LOCK_NAME, atomic_save, atomic_write_text, read_json

FORMAT = "nisqdiff-study-2"
STUDY_KEYS = ("checkpoint_sha256", "arch", "num", "steps", "eta", "seed", "batch_size", "shots", "trajectories",
              "torch", "threads")  # fmt: skip


def batch_path(out: Path, slug: str, b: int) -> Path:
    """Where batch ``b`` of a setting's images is saved."""
    return out / "settings" / slug / f"batch_{b:03d}.pt"


def open_study(out: Path, identity: dict, specs: list[DeviceSpec]) -> dict:
    """Create ``out/study.json`` or check that the one there is the same study (then add new settings).
    :class:`~nisqdiff.errors.StudyError` when the folder holds another study or files of something else."""
    path = out / "study.json"
    if path.is_file():
        study = read_json(path, StudyError, "study", FORMAT)
        diff = [f"{k} {study['identity'].get(k)!r} here vs {identity.get(k)!r} asked" for k in STUDY_KEYS
                if study["identity"].get(k) != identity.get(k)]  # fmt: skip
        if diff:
            raise StudyError(f"{out} holds another study ({'; '.join(diff)}); use a new --out")
    elif out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise StudyError(f"{out} is not empty and holds no study.json; use a new --out")
    else:
        study = {"format": FORMAT, "identity": identity, "settings": []}
    known = {s["label"] for s in study["settings"]}
    study["settings"] += [{"label": s.label, "profile": s.profile, "overrides": s.overrides} for s in specs if s.label not in known]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(study, indent=1) + "\n")
    return study


def spec_of(setting: dict) -> DeviceSpec:
    """The :class:`DeviceSpec` of a setting recorded in ``study.json``."""
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in setting["overrides"].items()}
    return DeviceSpec(setting["label"], setting["profile"], overrides)


@dataclass
class StudyPlan:
    """A checked study, ready to run: the pipeline, one built device per setting, the identity and
    the options that :func:`run_study` needs. Made by :func:`plan_study`, which writes nothing."""

    pipe: object
    specs: list
    devices: dict
    identity: dict
    out: Path
    options: dict


def plan_study(
    source: str | Path,
    specs: list[DeviceSpec],
    out: Path,
    num: int = 500,
    steps: int = 20,
    seed: int = 0,
    batch_size: int = 100,
    shots: int = 1024,
    trajectories: int = 8,
    eta: float = 0.0,
    data_dir: str | None = None,
    num_real: int = 10000,
    backbone: str = "classifier",
    bootstrap: int = 50,
    inception_path: str | None = None,
) -> StudyPlan:
    """Check every option, load the model at ``source`` (checkpoint or pretrained folder) and build
    every setting's device, writing nothing. ``shots`` is recorded as the study's default (the specs
    carry their own); ``trajectories`` applies to emulator settings, ``seed`` to the sampling and
    every device. :class:`~nisqdiff.errors.UsageError` for an option out of range, and the errors of
    the model, devices and backbone."""
    from .devices import make_device
    from .devices.base import check_shots
    from .devices.profiles import KIND_OPTIONS
    from .errors import UsageError
    from .files import check_writable
    from .data import locate
    from .metrics import load_backbone
    from .pipeline import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(source)
    pipe.check(num, "ddim", steps, eta, batch_size, seed)
    if num < 2:
        raise UsageError(f"--num must be at least 2 for FID, got {num}")
    check_shots(shots)
    for name, value, low in (("trajectories", trajectories, 2), ("bootstrap", bootstrap, 0), ("num-real", num_real, 2)):
        if value < low:
            raise UsageError(f"--{name} must be at least {low}, got {value}")
    check_writable(out)
    load_backbone(backbone, pipe.info["dataset"], inception_path)
    locate(pipe.info["dataset"], data_dir)  # the reference images are there before hours of sampling
    identity = {"checkpoint": str(source), "checkpoint_sha256": pipe.info["sha256"], "arch": pipe.arch,
                "dataset": pipe.info["dataset"], "num": num, "steps": steps, "eta": eta, "seed": seed,
                "batch_size": batch_size, "shots": shots, "trajectories": trajectories, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "nisqdiff": __version__}  # fmt: skip
    devices = {}
    for spec in specs:
        kind = spec.options()["kind"]
        extra = {k: v for k, v in {"seed": seed, "trajectories": trajectories}.items() if k in KIND_OPTIONS[kind]}
        if spec.options().get("method") == "exact":
            extra.pop("trajectories", None)  # unused by the exact method
        devices[spec.label] = make_device(spec, **extra)
    options = {"data_dir": data_dir, "num_real": num_real, "backbone": backbone, "bootstrap": bootstrap,
               "inception_path": inception_path}  # fmt: skip
    return StudyPlan(pipe, specs, devices, identity, Path(out), options)


def run_study(plan: StudyPlan, dist=None) -> dict | None:
    """Sample every setting of a planned study (finished batches are kept), then score them into
    ``plan.out`` (:func:`evaluate_study`; :func:`nisqdiff.report.render_report` draws the report from
    there). Hold the folder's :class:`~nisqdiff.files.RunLock` while it runs. Returns the metrics.
    :class:`~nisqdiff.errors.StudyError` when the folder holds another study. With ``dist``
    (:func:`nisqdiff.distributed.init`) rank r samples the batches b = r mod N of every setting (each
    batch reseeds its device, so they equal a one-process run's) and rank 0 alone writes study.json and
    scores; the other ranks return None."""
    from tqdm import tqdm

    from .circuits import ExecutionLog
    from .cost import CostWatch, watch_device
    from .devices.base import call_seed

    ident, out, pipe = plan.identity, plan.out, plan.pipe
    main = dist is None or dist.main
    study = open_study(out, ident, plan.specs) if main else None
    if dist is not None:
        dist.barrier()  # study.json is there before any batch is written
    n_batches = math.ceil(ident["num"] / ident["batch_size"])
    mine = range(n_batches) if dist is None else range(dist.rank, n_batches, dist.world)
    todo = {s.label: [b for b in mine if not batch_path(out, s.slug, b).is_file()] for s in plan.specs}
    with tqdm(total=ident["steps"] * sum(len(v) for v in todo.values()), desc=f"study {pipe.arch}", unit="step",
              disable=not main) as bar:  # fmt: skip
        for spec in plan.specs:
            device = plan.devices[spec.label]
            bar.set_postfix_str(spec.label)
            if todo[spec.label]:  # every batch full but perhaps the last: a close upper bound
                size = ident["batch_size"]
                device = watch_device(device, pipe.unet, size * len(todo[spec.label]), ident["steps"], size)
            for b in todo[spec.label]:
                t0 = time.time()
                device.reseed(call_seed(ident["seed"], b))  # batch b draws the same device noise when resumed
                log = ExecutionLog(device)
                pipe.set_executor(log)
                images = pipe(ident["num"], "ddim", ident["steps"], ident["eta"], ident["batch_size"], ident["seed"],
                              progress=bar.update, batches=[b])  # fmt: skip
                record = {"images": images, "device": log.summary(), "seconds": time.time() - t0}
                atomic_save(record, batch_path(out, spec.slug, b))
            if isinstance(device, CostWatch):
                device.bar.close()
    if dist is not None:
        dist.barrier()  # every rank's batches are saved
        if not main:
            return None
    return evaluate_study(out, study, pipe, **plan.options)


def load_batches(out: Path, setting: dict, num: int, batch_size: int) -> tuple[torch.Tensor, list[dict], float]:
    """(images (num, 1, 28, 28), the device record of every batch, total sampling seconds) of a setting."""
    slug = spec_of(setting).slug
    records = [torch.load(batch_path(out, slug, b), weights_only=True) for b in range(math.ceil(num / batch_size))]
    images = torch.cat([r["images"] for r in records])[:num]
    return images, [r["device"] for r in records], sum(r["seconds"] for r in records)


def complete_settings(out: Path, study: dict) -> list[dict]:
    """The settings of ``study`` whose every batch is saved (settings added by an unfinished run stay out)."""
    ident = study["identity"]
    n_batches = math.ceil(ident["num"] / ident["batch_size"])
    return [s for s in study["settings"] if all(batch_path(out, spec_of(s).slug, b).is_file() for b in range(n_batches))]


def describe_setting(setting: dict) -> dict:
    """What the report tabulates of a setting: kind, calibration, noise scale, shots, emulator method,
    readout, zne (its extrapolator, or None) and the shots per circuit execution (ZNE runs every circuit
    once per noise factor)."""
    opts = spec_of(setting).options()
    noisy = opts["kind"] in ("emulator", "aer-noisy")
    shots = opts.get("shots") if opts["kind"] not in ("noiseless", "depolarized") else None
    zne = opts.get("zne_extrapolator", "richardson") if opts.get("zne") else None
    return {"kind": opts["kind"], "calibration": opts.get("calibration") if noisy else None,
            "noise_scale": opts.get("noise_scale") if noisy else None, "shots": shots,
            "method": opts.get("method") if opts["kind"] == "emulator" else None,
            "readout": bool(opts.get("mitigate_readout")), "zne": zne,
            "shots_per_execution": (shots or 0) * (len(opts["zne"]) if zne else 1) or None}  # fmt: skip


def evaluate_study(out: Path, study: dict, pipe, data_dir, num_real: int, backbone: str, bootstrap: int,
                   inception_path: str | None = None) -> dict:  # fmt: skip
    """``metrics.json`` (one row per complete setting: its description, FID with interval, paired FID
    difference to noiseless, KID, IS, pixel RMSE to noiseless, mean standard error of <Z>, sampling
    seconds) and ``circuits.json`` of a sampled study. The reference images are the training images of
    the classes the model was trained on (all classes where it was trained on all; as ``evaluate``
    does). Returns the metrics document."""
    from .data import load_images
    from .metrics import score_image_sets

    ident = study["identity"]
    settings = complete_settings(out, study)
    loaded = {s["label"]: load_batches(out, s, ident["num"], ident["batch_size"]) for s in settings}
    images = {label: v[0] for label, v in loaded.items()}
    classes = (pipe.info.get("training") or {}).get("classes")
    real, _ = load_images(ident["dataset"], "train", data_dir, num_real, classes=classes)
    reference = next((s["label"] for s in settings if describe_setting(s)["kind"] == "noiseless"), None)
    metrics = score_image_sets(images, real, backbone, ident["dataset"], inception_path, bootstrap=bootstrap,
                               reference=reference, seed=ident["seed"])  # fmt: skip
    rows = []
    for s in settings:
        _, records, seconds = loaded[s["label"]]
        calls = sum(d.get("device_calls", 0) for d in records)
        rows.append({"setting": s["label"], **describe_setting(s),
                     **{k: v for k, v in metrics[s["label"]].items() if k != "backbone"},
                     "pixel_rmse_vs_noiseless": pixel_rmse(images[s["label"]], images[reference]) if reference else None,
                     "mean_stderr": sum(d.get("mean_stderr", 0) * d.get("device_calls", 0) for d in records) / calls if calls else 0.0,
                     "sampling_seconds": round(seconds, 2)})  # fmt: skip
    result = {"study": ident, "backbone": next(iter(metrics.values()))["backbone"], "num_real": len(real),
              "reference_classes": classes, "settings": rows}  # fmt: skip
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=1) + "\n")
    calibrations = {r["calibration"] for r in rows if r["calibration"]}
    atomic_write_text(out / "circuits.json", json.dumps(circuit_table(pipe.unet, calibrations), indent=1) + "\n")
    return result


def pixel_rmse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) root-mean-square pixel difference of each image pair of (N, ...) sets (pixels in [-1, 1])."""
    return (a - b).square().flatten(1).mean(1).sqrt()


def pixel_rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of :func:`pixel_rmse_per_image`."""
    return float(pixel_rmse_per_image(a, b).mean())


def circuit_table(unet, calibrations: set[str]) -> list[dict]:
    """Per circuit of the model and calibration (with its calibration date, which identifies the snapshot):
    two-qubit gates and depth, estimated success probability and physical qubits (the transpilation every
    noisy device of the study uses)."""
    from .calibration import circuit_stats
    from .devices import EmulatorDevice

    rows = []
    for cal in sorted(calibrations):
        dev = EmulatorDevice(cal)
        for c in unet.circuit_inventory():
            st = circuit_stats(dev.transpiled(c["ansatz"], c["weights"]), dev.snapshot)
            rows.append({"calibration": cal, "calibration_date": dev.snapshot["calibration_date"], "circuit": c["name"],
                         "ansatz": c["ansatz"], **st})  # fmt: skip
    return rows
