"""The noise-degradation study behind ``nisqdiff report`` (issue 4).

One checkpoint is sampled on every device setting with the same seeds (the same initial noise and,
for eta > 0, the same per-step noise), so differences between settings come from the device alone.
Each setting's images are saved per batch as they finish (``settings/<slug>/batch_NNN.pt``, written
atomically), so an interrupted study resumes at the first missing batch; ``study.json`` records what
the study is (checkpoint hash, images, steps, seed, ...) and a folder holding another study is refused.
When every batch exists, FID/KID/IS are computed against the training set with the recorded backbone
and the report is written: ``metrics.json``/``metrics.csv``, ``metric_vs_shots.png``,
``metric_vs_noise.png``, ``grids.png`` (one sample grid per setting side by side), ``circuits.json``
(per-circuit two-qubit gates and estimated success probability on each calibration) and ``report.md``.

Device settings (comma-separated, the grammar of :data:`GRAMMAR`): ``noiseless``, ``depolarized`` (every
<Z> = 0: the infinite-noise limit, a bound on what the circuits can cost), ``shots:128``,
``emulator:fake_sherbrooke@0.5`` (calibration at noise scale 0.5, the study's ``--shots``),
``emulator:fake_sherbrooke@1/8192`` (8192 shots), ``+readout`` (readout-error mitigation) and ``+zne``
(zero-noise extrapolation from noise scales x1 and x2, twice the shots), ``aer-noisy:...`` likewise.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

GRAMMAR = "noiseless | depolarized | shots:SHOTS | emulator:CALIBRATION@SCALE[/SHOTS][+readout][+zne] | aer-noisy:CALIBRATION@SCALE[/SHOTS][+readout]"
KINDS = ("noiseless", "depolarized", "shots", "emulator", "aer-noisy")
ZNE_FACTORS = (1.0, 2.0)
_NOISY = re.compile(r"^(emulator|aer-noisy):([^@/+]+)@([0-9.]+(?:e-?[0-9]+)?)(?:/([0-9]+))?((?:\+[a-z]+)*)$")
STUDY_KEYS = ("checkpoint_sha256", "arch", "num", "steps", "eta", "seed", "batch_size", "shots", "trajectories")


class StudyError(ValueError):
    """A device string that does not parse, or an output folder holding another study."""


@dataclass(frozen=True)
class Setting:
    """One device setting of a study (see :data:`GRAMMAR`)."""

    label: str
    kind: str
    calibration: str | None = None
    noise_scale: float | None = None
    shots: int | None = None
    readout: bool = False
    zne: bool = False

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.label).strip("-")


def parse_setting(text: str, default_shots: int) -> Setting:
    """Parse one device string; :class:`StudyError` naming the grammar (or the valid kinds)."""
    text = text.strip()
    if text in ("noiseless", "depolarized"):
        return Setting(text, text)
    if text.startswith("shots:"):
        if not text[6:].isdigit() or int(text[6:]) < 2:
            raise StudyError(f"device '{text}': shots must be an integer >= 2; grammar: {GRAMMAR}")
        return Setting(text, "shots", shots=int(text[6:]))
    m = _NOISY.match(text)
    if m is None:
        kind = text.split(":", 1)[0]
        if kind not in KINDS:
            raise StudyError(f"unknown device kind '{kind}' in '{text}'; valid: {', '.join(KINDS)}; grammar: {GRAMMAR}")
        raise StudyError(f"device '{text}' does not parse; grammar: {GRAMMAR}")
    kind, calibration, scale, shots, extras = m.groups()
    options = [e for e in extras.split("+") if e]
    bad = [e for e in options if e not in ("readout", "zne") or (e == "zne" and kind != "emulator")]
    if bad or len(set(options)) != len(options):
        raise StudyError(f"device '{text}': unknown or repeated option(s) {', '.join(bad) or options}; grammar: {GRAMMAR}")
    from .calibration import load_calibration

    load_calibration(calibration)  # unknown name -> CalibrationError listing the valid ones
    return Setting(text, kind, calibration, float(scale), int(shots) if shots else default_shots,
                   "readout" in options, "zne" in options)  # fmt: skip


def parse_settings(text: str, default_shots: int) -> list[Setting]:
    """Comma-separated device strings -> settings (no duplicates)."""
    settings = [parse_setting(t, default_shots) for t in text.split(",") if t.strip()]
    if not settings:
        raise StudyError(f"--devices is empty; grammar: {GRAMMAR}")
    labels = [s.label for s in settings]
    if len(set(labels)) != len(labels):
        raise StudyError(f"--devices repeats a setting: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    return settings


def make_setting_device(setting: Setting, seed: int, trajectories: int):
    """The device of a setting (None: the exact simulator the model trains with)."""
    from .devices import AerNoisyDevice, EmulatorDevice, ShotsDevice
    from .devices.simulated import DepolarizedDevice

    if setting.kind == "noiseless":
        return None
    if setting.kind == "depolarized":
        return DepolarizedDevice()
    if setting.kind == "shots":
        return ShotsDevice(setting.shots, seed)
    if setting.kind == "emulator":
        zne = ZNE_FACTORS if setting.zne else None
        return EmulatorDevice(setting.calibration, setting.noise_scale, setting.shots, trajectories, seed,
                              setting.readout, zne)  # fmt: skip
    return AerNoisyDevice(setting.calibration, setting.noise_scale, setting.shots, seed, setting.readout)


def open_study(out: Path, identity: dict, settings: list[Setting]) -> dict:
    """Create ``out/study.json`` or check that the one there is the same study (then add new settings).
    :class:`StudyError` when the folder holds another study or files of something else."""
    from .checkpoints import atomic_write_text

    path = out / "study.json"
    if path.is_file():
        study = json.loads(path.read_text())
        diff = [f"{k} {study['identity'].get(k)!r} here vs {identity.get(k)!r} asked" for k in STUDY_KEYS
                if study["identity"].get(k) != identity.get(k)]  # fmt: skip
        if diff:
            raise StudyError(f"{out} holds another study ({'; '.join(diff)}); use a new --out")
    elif out.is_dir() and any(out.iterdir()):
        raise StudyError(f"{out} is not empty and holds no study.json; use a new --out")
    else:
        study = {"identity": identity, "settings": []}
    known = {s["label"] for s in study["settings"]}
    study["settings"] += [asdict(s) for s in settings if s.label not in known]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(study, indent=1) + "\n")
    return study


def _batch_path(out: Path, slug: str, b: int) -> Path:
    """Where batch ``b`` of a setting's images is saved."""
    return out / "settings" / slug / f"batch_{b:03d}.pt"


def run_study(
    checkpoint: Path,
    settings: list[Setting],
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
) -> dict:
    """Sample every setting (resuming finished batches), then evaluate and write the report into
    ``out``. Returns the metrics per setting label. Raises :class:`StudyError` (bad folder),
    ``ValueError``/``FileNotFoundError`` from the checkpoint, devices or data."""
    from tqdm import tqdm

    from .checkpoints import atomic_save, atomic_write_text, file_sha256, load_checkpoint, model_from_checkpoint
    from .circuits import CircuitExecutor
    from .devices import DeviceExecutor
    from .devices.base import call_seed
    from .sampling import sample_images

    ckpt = load_checkpoint(checkpoint)
    identity = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint), "arch": ckpt["arch"],
                "dataset": ckpt["config"]["dataset"], "num": num, "steps": steps, "eta": eta, "seed": seed,
                "batch_size": batch_size, "shots": shots, "trajectories": trajectories}  # fmt: skip
    study = open_study(out, identity, settings)
    n_batches = math.ceil(num / batch_size)
    todo = {s.label: [b for b in range(n_batches) if not _batch_path(out, s.slug, b).is_file()] for s in settings}
    model = model_from_checkpoint(ckpt)
    with tqdm(total=steps * sum(len(v) for v in todo.values()), desc=f"study {ckpt['arch']}", unit="step") as bar:
        for s in settings:
            if not todo[s.label]:
                continue
            folder = out / "settings" / s.slug
            folder.mkdir(parents=True, exist_ok=True)
            info_path = folder / "device.json"
            info = json.loads(info_path.read_text()) if info_path.is_file() else {"seconds": 0.0, "batches": {}}
            device = make_setting_device(s, seed, trajectories)
            bar.set_postfix_str(s.label)
            for b in todo[s.label]:
                t0 = time.time()
                executor = None
                if device is not None:
                    device.reseed(call_seed(seed, b))  # batch b draws the same device noise when resumed
                    executor = DeviceExecutor(device)
                model.set_executor(executor or CircuitExecutor())
                images = sample_images(model, num, "ddim", steps, eta, batch_size, seed, progress=bar.update, batches=[b])
                atomic_save(images, _batch_path(out, s.slug, b))
                info["seconds"] = round(info["seconds"] + time.time() - t0, 2)
                info["batches"][str(b)] = executor.summary() if executor is not None else {"device": "noiseless"}
                atomic_write_text(info_path, json.dumps(info, indent=1) + "\n")
    return write_report(out, study, ckpt, data_dir, num_real, backbone, bootstrap)


def _load_images(out: Path, setting: dict, num: int, batch_size: int) -> torch.Tensor:
    slug = Setting(**setting).slug
    return torch.cat([torch.load(_batch_path(out, slug, b), weights_only=True) for b in range(math.ceil(num / batch_size))])[:num]


def write_report(out: Path, study: dict, ckpt: dict, data_dir, num_real: int, backbone: str, bootstrap: int) -> dict:
    """Metrics with confidence intervals, plots, grids, circuit statistics and report.md for the
    settings of a study whose every batch is sampled."""
    from .checkpoints import atomic_write_text
    from .data import load_images
    from .metrics import compare_metrics
    from .sampling import save_grid

    ident = study["identity"]
    n_batches = math.ceil(ident["num"] / ident["batch_size"])
    complete = [s for s in study["settings"] if all(_batch_path(out, Setting(**s).slug, b).is_file() for b in range(n_batches))]
    study = {**study, "settings": complete}  # settings recorded by earlier runs and not finished stay out
    images = {s["label"]: _load_images(out, s, ident["num"], ident["batch_size"]) for s in study["settings"]}
    for s in study["settings"]:
        save_grid(images[s["label"]][:64], out / "settings" / Setting(**s).slug / "grid.png")
    real, _ = load_images(ident["dataset"], "train", data_dir, num_real)
    reference = next((s["label"] for s in study["settings"] if s["kind"] == "noiseless"), None)
    metrics = compare_metrics(images, real, backbone, ident["dataset"], bootstrap=bootstrap, reference=reference,
                              seed=ident["seed"])  # fmt: skip
    rows = []
    for s in study["settings"]:
        info = json.loads((out / "settings" / Setting(**s).slug / "device.json").read_text())
        dev = list(info["batches"].values())
        calls = sum(d.get("device_calls", 0) for d in dev)
        row = {"setting": s["label"], **{k: s[k] for k in ("kind", "calibration", "noise_scale", "shots", "readout", "zne")},
               "shots_per_execution": (s["shots"] or 0) * (len(ZNE_FACTORS) if s["zne"] else 1) or None,
               **{k: v for k, v in metrics[s["label"]].items() if k != "backbone"},
               "pixel_rmse_vs_noiseless": _rmse(images[s["label"]], images[reference]) if reference else None,
               "mean_stderr": (sum(d.get("mean_stderr", 0) * d.get("device_calls", 0) for d in dev) / calls) if calls else 0.0,
               "sampling_seconds": info["seconds"]}  # fmt: skip
        rows.append(row)
    backbone_desc = next(iter(metrics.values()))["backbone"]
    result = {"study": ident, "backbone": backbone_desc, "num_real": len(real), "settings": rows}
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    circuits = circuit_table(ckpt, {s["calibration"] for s in study["settings"] if s["calibration"]})
    atomic_write_text(out / "circuits.json", json.dumps(circuits, indent=1) + "\n")
    _plots(out, rows)
    _grids(out, study, images)
    atomic_write_text(out / "report.md", _markdown(result, circuits))
    return result


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the per-image root-mean-square pixel difference (pixels in [-1, 1])."""
    return float((a - b).square().flatten(1).mean(1).sqrt().mean())


def circuit_table(ckpt: dict, calibrations: set[str]) -> list[dict]:
    """Per circuit of the model and calibration: two-qubit gates and depth, estimated success
    probability and physical qubits (the transpilation every noisy device of the study uses)."""
    from .calibration import circuit_stats
    from .checkpoints import model_from_checkpoint
    from .devices import EmulatorDevice
    from .models.hybrid import PatchCircuits

    model = model_from_checkpoint(ckpt)
    rows = []
    for cal in sorted(calibrations):
        dev = EmulatorDevice(cal)
        for name, module in model.named_modules():
            if isinstance(module, PatchCircuits):
                for c in range(module.n_circuits):
                    st = circuit_stats(dev.transpiled(module.ansatz, module.weights[c].detach().double()), dev.snapshot)
                    rows.append({"calibration": cal, "circuit": f"{name}[{c}]", "ansatz": module.ansatz, **st})
    return rows


def _plots(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoints import atomic_write

    metrics = (("fid", "FID", None), ("fid_delta", "FID - noiseless (paired)", None), ("kid_mean", "KID", "kid_std"),
               ("is_mean", "IS", "is_std"))  # fmt: skip
    base = next((r for r in rows if r["kind"] == "noiseless"), None)
    for name, xkey, select in (
        ("metric_vs_shots", "shots", lambda r: r["kind"] == "shots"),
        ("metric_vs_noise", "noise_scale", lambda r: r["kind"] in ("emulator", "aer-noisy")),
    ):
        fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
        for ax, (key, title, err) in zip(axes, metrics):
            groups: dict = {}
            for r in filter(select, rows):
                tag = (r["calibration"] or "ideal") + (" +readout" if r["readout"] else "") + (" +zne" if r["zne"] else "")
                groups.setdefault(tag, []).append(r)
            for tag, rs in sorted(groups.items()):
                rs = sorted(rs, key=lambda r: r[xkey])
                if key not in rs[0]:
                    continue
                x, y = [r[xkey] for r in rs], [r[key] for r in rs]
                if key.startswith("fid") and f"{key}_ci_low" in rs[0]:
                    lo, hi = f"{key}_ci_low", f"{key}_ci_high"
                    yerr = [[max(r[key] - r[lo], 0) for r in rs], [max(r[hi] - r[key], 0) for r in rs]]
                else:
                    yerr = [r[err] for r in rs] if err else None
                ax.errorbar(x, y, yerr=yerr, marker="o", capsize=3, label=tag)
            if base is not None and key in base:
                ax.axhline(base[key], color="k", ls="--", lw=1, label="noiseless")
            if xkey == "shots":
                ax.set_xscale("log", base=2)
            ax.set_xlabel("shots per circuit execution" if xkey == "shots" else "noise scale (x calibration error rates)")
            ax.set_title(title)
            ax.legend(fontsize=7)
        fig.tight_layout()
        atomic_write(out / f"{name}.png", lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=110))
        plt.close(fig)


def _grids(out: Path, study: dict, images: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoints import atomic_write
    from .sampling import grid_array

    labels = [s["label"] for s in study["settings"]]
    fig, axes = plt.subplots(1, len(labels), figsize=(2.2 * len(labels), 2.6), squeeze=False)
    for ax, label in zip(axes[0], labels):
        ax.imshow(grid_array(images[label][:16], nrow=4), cmap="gray", vmin=0, vmax=255)
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    atomic_write(out / "grids.png", lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)


def _markdown(result: dict, circuits: list[dict]) -> str:
    ident, b = result["study"], result["backbone"]
    lines = [
        f"# Noise-degradation study: {ident['arch']} ({ident['dataset']})",
        "",
        f"Checkpoint `{ident['checkpoint']}` (sha256 {ident['checkpoint_sha256'][:12]}), {ident['num']} images per "
        f"setting, DDIM {ident['steps']} steps (eta {ident['eta']}), seed {ident['seed']} for every setting (same "
        f"initial noise), emulator trajectories per input {ident['trajectories']}. Metrics against {result['num_real']} "
        f"training images with backbone `{b['name']}` ({b.get('features')}-d features"
        + (f", test accuracy {b['test_accuracy']}" if b.get("test_accuracy") else "")
        + "): scores from another "
        "backbone are not comparable.",
        "",
        "| setting | shots/execution | FID [95% CI] | FID - noiseless [95% CI] | KID +- std | IS +- std | "
        "pixel RMSE vs noiseless | mean SE of <Z> | sampling s |",
        "|---|---:|---|---|---|---|---:|---:|---:|",
    ]
    for r in result["settings"]:
        ci = f" [{r['fid_ci_low']:.2f}, {r['fid_ci_high']:.2f}]" if "fid_ci_low" in r else ""
        delta = (
            f"{r['fid_delta']:+.2f} [{r['fid_delta_ci_low']:+.2f}, {r['fid_delta_ci_high']:+.2f}]" if "fid_delta" in r else "-"
        )
        rmse = f"{r['pixel_rmse_vs_noiseless']:.4f}" if r["pixel_rmse_vs_noiseless"] is not None else "-"
        lines.append(
            f"| `{r['setting']}` | {r['shots_per_execution'] or 'exact'} | {r['fid']:.2f}{ci} | {delta} | "
            f"{r['kid_mean']:.3f} +- {r['kid_std']:.3f} | {r['is_mean']:.2f} +- {r['is_std']:.2f} | "
            f"{rmse} | {r['mean_stderr']:.4f} | {r['sampling_seconds']:.0f} |"
        )
    lines += ["", "![metrics against shots](metric_vs_shots.png)", "", "![metrics against noise scale](metric_vs_noise.png)",
              "", "![first 16 images of every setting](grids.png)", ""]  # fmt: skip
    if circuits:
        lines += ["## Circuits on each calibration", "",
                  "| calibration | circuit | 2q gates | 2q depth | est. success probability | physical qubits |",
                  "|---|---|---:|---:|---:|---|"]  # fmt: skip
        for c in circuits:
            lines.append(
                f"| {c['calibration']} | {c['circuit']} | {c['two_qubit_gates']} | {c['two_qubit_depth']} | "
                f"{c.get('success_probability', float('nan')):.3f} | {c.get('physical_qubits')} |"
            )
        lines.append("")
    lines += [
        "Intervals: basic bootstrap over the generated images (FID - noiseless: paired, the same resampled "
        "indices for both, which the shared seeds make meaningful). Pixel RMSE vs noiseless: how far the same "
        "seed's image moved, averaged over images (pixels in [-1, 1]). "
        "Notes: `+readout` inverts each qubit's assignment matrix; `+zne` runs every circuit at noise scales x1 and x2 "
        f"({ZNE_FACTORS}) and extrapolates linearly to zero (twice the shots). The mean SE column is the average "
        "standard error of the device's <Z> estimates (shot and, on the emulator, trajectory noise). Emulator "
        "settings with fewer trajectories than shots carry more estimation noise than the same shots on hardware; "
        "compare their mean SE with the shots settings'.",
        "",
    ]
    return "\n".join(lines)
