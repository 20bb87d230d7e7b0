"""The report of a noise-degradation study: tables, plots, grids and Markdown from what the study saved.

:func:`render_report` reads a study folder written by :mod:`nisqdiff.study` (``study.json``, the
settings' saved images, ``metrics.json`` and ``circuits.json``) and writes ``metrics.csv``,
``metric_vs_shots.png``, ``metric_vs_noise.png``, ``grids.png`` (16 images of every setting side by
side), ``settings/<slug>/grid.png`` and ``report.md``. It samples nothing and scores nothing, so
``nisqdiff report --render DIR`` redraws a study in seconds.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import StudyError
from .files import atomic_write, atomic_write_text, read_json
from .images import grid_array, save_grid


def render_report(out: str | Path) -> Path:
    """Write every table, plot and grid of the study in ``out`` from its saved files; returns the path
    of ``report.md``. :class:`~nisqdiff.errors.StudyError` when ``out`` holds no scored study."""
    from .study import FORMAT as STUDY_FORMAT, load_batches, spec_of

    out = Path(out)
    for name in ("study.json", "metrics.json"):
        if not (out / name).is_file():
            raise StudyError(f"{out} holds no {name}: --render needs the --out folder of a finished study")
    study = read_json(out / "study.json", StudyError, "study", STUDY_FORMAT)
    result = read_json(out / "metrics.json", StudyError, "study metrics file")
    circuits = read_json(out / "circuits.json", StudyError, "circuit table") if (out / "circuits.json").is_file() else []
    rows = result["settings"]
    ident = result["study"]
    settings = {s["label"]: s for s in study["settings"]}
    images = {}
    for r in rows:
        images[r["setting"]] = load_batches(out, settings[r["setting"]], ident["num"], ident["batch_size"])[0]
        save_grid(images[r["setting"]][:64], out / "settings" / spec_of(settings[r["setting"]]).slug / "grid.png")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    _plots(out, rows)
    _grids(out, [r["setting"] for r in rows], images)
    return atomic_write_text(out / "report.md", _markdown(result, circuits))


def _plots(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


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
                zne = f" +zne-{r['zne']}" if isinstance(r["zne"], str) else " +zne" if r["zne"] else ""  # older: a bool
                tag = (r["calibration"] or "ideal") + (" exact" if r.get("method") == "exact" else "") + (
                    " +readout" if r["readout"] else "") + zne
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


def _grids(out: Path, labels: list[str], images: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


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
        f"training images{' of classes ' + ', '.join(map(str, result['reference_classes'])) if result.get('reference_classes') else ''} with backbone `{b['name']}` ({b.get('features')}-d features"
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
                  "| calibration (snapshot ID) | circuit | 2q gates | 2q depth | est. success probability | physical qubits |",
                  "|---|---|---:|---:|---:|---|"]  # fmt: skip
        for c in circuits:
            lines.append(
                f"| {c['calibration']}{'@' + c['calibration_date'] if c.get('calibration_date') else ''} | {c['circuit']} | {c['two_qubit_gates']} | {c['two_qubit_depth']} | "
                f"{c.get('success_probability', float('nan')):.3f} | {c.get('physical_qubits')} |"
            )
        lines.append("")
    lines += [
        "Intervals: basic bootstrap over the generated images (FID - noiseless: paired, the same resampled "
        "indices for both, which the shared seeds make meaningful). Pixel RMSE vs noiseless: how far the same "
        "seed's image moved, averaged over images (pixels in [-1, 1]). "
        "Notes: `+exact` is the emulator's exact method (exact noisy <Z>, binomial shots per qubit); `+readout` "
        "inverts each qubit's assignment matrix; `+zne[-EXTRAPOLATOR]` runs every circuit at noise factors "
        "1, 2, 3 and extrapolates to zero (Richardson unless named; as many times the shots as factors). The mean "
        "SE column is the average standard error of the device's <Z> estimates (shot and, on the trajectory "
        "emulator, trajectory noise). Trajectory settings with fewer trajectories than shots carry more "
        "estimation noise than the same shots on hardware; compare their mean SE with the shots settings'.",
        "",
    ]
    return "\n".join(lines)
