"""Reference points for a metric backbone: real held-out images and pure noise against the training set.

    python scripts/reference_metrics.py --dataset mnist --num 1000 --data-dir ../shared/data

FID/KID/IS from the shipped classifier backbone have their own scale (not Inception's); these two rows
bracket it: the first N test images (what a perfect generator would score at this sample size) and N
images of uniform noise. Prints one JSON line per reference.
"""

from __future__ import annotations

import argparse
import json

import torch

from nisqdiff.data import load_images
from nisqdiff.metrics import compute_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--backbone", default="classifier")
    args = ap.parse_args()
    real, _ = load_images(args.dataset, "train", args.data_dir)
    test, _ = load_images(args.dataset, "test", args.data_dir, subset=args.num)
    noise = torch.rand(args.num, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for name, images in (("test-set images", test), ("uniform noise", noise)):
        m = compute_metrics(images, real, args.backbone, args.dataset)
        print(
            json.dumps(
                {
                    "reference": name,
                    **{k: m[k] for k in ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "num_fake", "num_real")},
                    "backbone": m["backbone"]["name"],
                }
            )
        )


if __name__ == "__main__":
    main()
