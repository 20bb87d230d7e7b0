"""Paired FID differences between sample sets already drawn from the same seeds (no sampling).

    python scripts/compare_samples.py --reference classical-s2 \\
        --samples classical-s2=runs/protocol/mnist-classical-s2/eval-ddim100/samples.pt \\
        --samples 1hqconv=runs/protocol/mnist-1hqconv-s0/eval-ddim100/samples.pt \\
        --data-dir ../shared/data --out docs/protocol/paired-mnist.json

Every ``samples.pt`` (written by ``nisqdiff sample``) must come from the same initial noise: the same
number of images, seed, batch size, sampler, steps and eta, so that image i of every set starts from the
same x_T and the sets can be resampled together. Prints, and with ``--out`` writes as JSON, each set's
FID, KID and IS against ``--num-real`` images of ``--dataset``'s training set (the shipped classifier backbone) and its FID
difference to ``--reference`` with the 95% basic bootstrap interval of the paired difference (the same
resampled image indices for every set). The paired interval is narrower than comparing two sets' own
intervals, where the two models map the same noise to similar images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nisqdiff.data import load_images
from nisqdiff.errors import UsageError
from nisqdiff.files import atomic_write_text
from nisqdiff.images import load_samples
from nisqdiff.metrics import score_image_sets

SAME = ("num", "seed", "batch_size", "sampler", "steps", "eta")  # what fixes every image's initial noise


def fail(message: str) -> None:
    """Bad input: one line on stderr and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load_sets(pairs: list[str]) -> tuple[dict, dict]:
    """{name: images (N, 1, 28, 28)} and {name: meta} from NAME=PATH arguments; exits with a one-line
    error for a malformed argument, a missing file, or sets that do not share their initial noise."""
    images, metas = {}, {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name:
            fail(f"--samples takes NAME=PATH to a samples.pt, got {pair!r}")
        try:
            images[name], meta = load_samples(Path(path))
        except UsageError as exc:
            fail(str(exc))
        metas[name] = {**meta, "path": path}
    first = next(iter(metas))
    for name, meta in metas.items():
        diff = [k for k in SAME if meta.get(k) != metas[first].get(k)]
        if diff:
            fail(f"{name} and {first} differ in {', '.join(diff)}: their images do not share initial "
                     "noise, so they cannot be compared pair by pair")  # fmt: skip
    return images, metas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", action="append", required=True, help="NAME=PATH of a samples.pt (two or more)")
    ap.add_argument("--reference", required=True, help="the NAME the others are compared with")
    ap.add_argument("--dataset", default="mnist", help="the training set the models learned (the reference images)")
    ap.add_argument("--num-real", type=int, default=60000)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()
    images, metas = load_sets(args.samples)
    if len(images) < 2 or args.reference not in images:
        fail(f"give two or more --samples and a --reference among their names ({', '.join(images)})")
    real, _ = load_images(args.dataset, "train", args.data_dir, args.num_real)
    meta = metas[args.reference]
    scores = score_image_sets(images, real, bootstrap=args.bootstrap, reference=args.reference, seed=meta["seed"])
    for name, s in scores.items():
        print(f"{name:<24} FID {s['fid']:7.2f} [{s['fid_ci_low']:.2f}, {s['fid_ci_high']:.2f}]  "
              f"{name} - {args.reference}: {s['fid_delta']:+.2f} [{s['fid_delta_ci_low']:+.2f}, {s['fid_delta_ci_high']:+.2f}]")
    if args.out:
        result = {"reference": args.reference, "num_real": len(real), "dataset": args.dataset,
                  "noise": {k: meta.get(k) for k in SAME}, "sets": {n: metas[n] for n in images},
                  "scores": {n: {k: v for k, v in s.items() if k != "backbone"} for n, s in scores.items()},
                  "backbone": scores[args.reference]["backbone"]}  # fmt: skip
        atomic_write_text(Path(args.out), json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
