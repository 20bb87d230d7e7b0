"""Compare two settings of one sampled study, paired image for image (the same seeds, the same model).

    python scripts/compare_settings.py --study runs/study/mnist-quanv --a shots:1024 \\
        --b "emulator:fake_torino@0+exact" --data-dir ../shared/data

Prints, and with ``--out`` writes as JSON: FID of each setting and the paired FID difference b - a with
its 95% basic bootstrap interval (the same resampled images for both, classifier backbone), and each
setting's per-image pixel RMSE to the study's noiseless images with the paired difference of their
means and its 95% percentile bootstrap interval. The second is the more sensitive one: it says how far
each setting's device noise moves the images, image by image, against the same noiseless image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from nisqdiff.data import load_images
from nisqdiff.metrics import score_image_sets
from nisqdiff.errors import StudyError
from nisqdiff.files import read_json
from nisqdiff.study import FORMAT, complete_settings, describe_setting, load_batches, pixel_rmse_per_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", required=True, help="a study folder written by `nisqdiff report`")
    ap.add_argument("--a", required=True, help="label of the reference setting")
    ap.add_argument("--b", required=True, help="label of the setting compared with it")
    ap.add_argument("--num-real", type=int, default=10000)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()

    out = Path(args.study)
    study = read_json(out / "study.json", StudyError, "study", FORMAT)
    ident = study["identity"]
    settings = {s["label"]: s for s in complete_settings(out, study)}
    noiseless = next((k for k, s in settings.items() if describe_setting(s)["kind"] == "noiseless"), None)
    for label in (args.a, args.b, noiseless):
        if label not in settings:
            sys.exit(f"error: setting {label!r} is not complete in {out}; complete ones: {', '.join(settings)}")
    images = {k: load_batches(out, settings[k], ident["num"], ident["batch_size"])[0] for k in (args.a, args.b, noiseless)}
    real, _ = load_images(ident["dataset"], "train", args.data_dir, args.num_real)
    fakes = {k: images[k] for k in (args.a, args.b)}
    scores = score_image_sets(fakes, real, "classifier", ident["dataset"], bootstrap=args.bootstrap,
                              reference=args.a, seed=ident["seed"])  # fmt: skip

    rmse = {k: pixel_rmse_per_image(images[k], images[noiseless]) for k in fakes}  # (N,) each
    diff = rmse[args.b] - rmse[args.a]
    gen = torch.Generator().manual_seed(ident["seed"])
    idx = torch.randint(len(diff), (args.bootstrap, len(diff)), generator=gen)
    boot = diff[idx].mean(1)
    result = {
        "study": str(out), "a": args.a, "b": args.b, "num": ident["num"], "steps": ident["steps"],
        "fid_a": scores[args.a]["fid"], "fid_b": scores[args.b]["fid"], "fid_b_minus_a": scores[args.b]["fid_delta"],
        "fid_b_minus_a_ci": [scores[args.b]["fid_delta_ci_low"], scores[args.b]["fid_delta_ci_high"]],
        "rmse_vs_noiseless_a": float(rmse[args.a].mean()), "rmse_vs_noiseless_b": float(rmse[args.b].mean()),
        "rmse_b_minus_a": float(diff.mean()),
        "rmse_b_minus_a_ci": [float(boot.quantile(0.025)), float(boot.quantile(0.975))],
        "backbone": scores[args.a]["backbone"],
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
