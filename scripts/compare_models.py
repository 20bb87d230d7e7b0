"""Compare two trained models on the same seeds: held-out loss, FID/KID/IS with intervals, paired FID difference.

    python scripts/compare_models.py --a runs/amp/classical-fp32/checkpoint.pt --b runs/amp/classical-bf16/checkpoint.pt \\
        --num 1000 --steps 50 --data-dir ../shared/data

    python scripts/compare_models.py --a zoo:mnist-classical --b zoo:mnist-classical --b-precision bf16 \\
        --num 1000 --steps 50 --data-dir ../shared/data      # bf16 sampling against fp32, same weights

    python scripts/compare_models.py --a zoo:mnist-classical --b zoo:mnist-classical --steps 100 \\
        --b-sampler ddpm --num 1000 --data-dir ../shared/data   # DDIM-100 against DDPM (all 1,000 steps)

    python scripts/compare_models.py --a zoo:mnist-classical --b zoo:mnist-classical --a-torch \\
        --num 1000 --steps 20 --data-dir ../shared/data      # the U-Net's compiled kernels against torch

Both models sample ``--num`` images (a with DDIM, b with ``--b-sampler``) from the same seeds (same initial noise), so the paired
bootstrap of FID(b) - FID(a) (the same resampled indices for both) is meaningful. The held-out loss is
the P2-weighted epsilon MSE of each model's EMA weights on ``--loss-images`` test images, with the same
timesteps and noise for both, in each model's sampling precision; its interval is a paired bootstrap over images. Scores use the
shipped classifier backbone (not Inception: compare the two, not with the paper's numbers).
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext

import torch
from tqdm import tqdm

from nisqdiff.data import load_images
from nisqdiff.metrics import score_image_sets
from nisqdiff.models import fused
from nisqdiff.pipeline import DiffusionPipeline


def heldout_losses(pipe: DiffusionPipeline, x0: torch.Tensor, seed: int) -> torch.Tensor:
    """Per-image P2-weighted epsilon MSE (N,) at timesteps and noise drawn from ``seed``."""
    d = pipe.scheduler
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(0, d.timesteps, (len(x0),), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    out = []
    model = pipe.denoiser()
    with torch.no_grad():
        for i in range(0, len(x0), 250):
            sl = slice(i, i + 250)
            pred = model(d.q_sample(x0[sl], t[sl], noise[sl]), t[sl])
            out.append((pred - noise[sl]).square().flatten(1).mean(1) * d.p2_weight[t[sl]].float())
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="reference model (checkpoint or pretrained folder)")
    ap.add_argument("--b", required=True, help="model compared with it")
    ap.add_argument("--b-precision", default="fp32", choices=("fp32", "bf16"), help="sampling precision of b (a: fp32)")
    ap.add_argument("--b-sampler", default="ddim", choices=("ddim", "ddpm"), help="sampler of b (a: DDIM)")
    ap.add_argument("--b-steps", type=int, default=None, help="sampling steps of b (default: --steps)")
    ap.add_argument("--a-torch", action="store_true", help="a runs the U-Net in torch, without the compiled kernels of "
                    "nisqdiff.models.fused (b with them, where they are built)")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-real", type=int, default=10000)
    ap.add_argument("--loss-images", type=int, default=2000)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()
    pipes = {"a": DiffusionPipeline.from_pretrained(args.a), "b": DiffusionPipeline.from_pretrained(args.b)}
    pipes["b"].precision = args.b_precision
    dataset = pipes["a"].info["dataset"]
    test, _ = load_images(dataset, "test", args.data_dir, args.loss_images)
    def mode(k):  # the U-Net's kernels switched off for a with --a-torch
        return fused.torch_only() if k == "a" and args.a_torch else nullcontext()

    losses = {}
    for k, p in pipes.items():
        with mode(k):
            losses[k] = heldout_losses(p, test, args.seed)
    diff = losses["b"] - losses["a"]
    gen = torch.Generator().manual_seed(args.seed)
    boots = torch.stack([diff[torch.randint(len(diff), (len(diff),), generator=gen)].mean() for _ in range(args.bootstrap)])
    lo, hi = (2 * diff.mean() - boots.quantile(torch.tensor([0.975, 0.025]))).tolist()
    samplers = {"a": ("ddim", args.steps), "b": (args.b_sampler, args.b_steps or args.steps)}
    for k, p in pipes.items():
        p.check(args.num, *samplers[k], 0.0, 250, args.seed)  # before any sampling
    b_steps = pipes["b"].steps_per_batch(*samplers["b"])  # DDPM runs all T steps
    total = sum(p.steps_per_batch(*samplers[k]) for k, p in pipes.items()) * -(-args.num // 250)
    with tqdm(total=total, desc="sampling", unit="step") as bar:
        images = {}
        for k, p in pipes.items():
            with mode(k):
                images[k] = p(args.num, *samplers[k], batch_size=250, seed=args.seed, progress=bar.update)
    real, _ = load_images(dataset, "train", args.data_dir, args.num_real)
    scores = score_image_sets(images, real, bootstrap=args.bootstrap, reference="a", seed=args.seed)
    result = {"a": args.a, "b": args.b, "a_torch": args.a_torch, "b_precision": args.b_precision, "num": args.num, "steps": args.steps, "seed": args.seed,
              "b_sampler": args.b_sampler, "b_steps": b_steps,
              "heldout_loss": {k: float(v.mean()) for k, v in losses.items()},
              "heldout_loss_b_minus_a": [float(diff.mean()), lo, hi],
              "scores": {k: {m: v for m, v in s.items() if m != "backbone"} for k, s in scores.items()},
              "backbone": scores["a"]["backbone"]}  # fmt: skip
    for k in ("a", "b"):
        s = scores[k]
        print(f"{k}: {getattr(args, k)}  held-out loss {result['heldout_loss'][k]:.5f}  FID {s['fid']:.2f} "
              f"[{s['fid_ci_low']:.2f}, {s['fid_ci_high']:.2f}]  KID {s['kid_mean']:.4f} +- {s['kid_std']:.4f}  "
              f"IS {s['is_mean']:.2f} +- {s['is_std']:.2f}")  # fmt: skip
    b = scores["b"]
    print(f"b - a: held-out loss {diff.mean():+.5f} [{lo:+.5f}, {hi:+.5f}], FID {b['fid_delta']:+.2f} "
          f"[{b['fid_delta_ci_low']:+.2f}, {b['fid_delta_ci_high']:+.2f}] (95% basic bootstrap, paired)")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
