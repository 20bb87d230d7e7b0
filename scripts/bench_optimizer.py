"""Adam's step on a U-Net's parameters: torch's per-tensor loop, foreach and fused implementations, alternating.

    python scripts/bench_optimizer.py                      # classical
    python scripts/bench_optimizer.py --arch quanv --rounds 5

Prints the median milliseconds of one ``optimizer.step()`` (random gradients, the training's Adam settings)
per implementation over 30 x ``--rounds`` rounds in which every implementation steps once, in turn,
and the largest parameter difference between the per-tensor loop and fused Adam after 10 steps from the same
state. Training uses fused Adam (nisqdiff/training.py).
"""

from __future__ import annotations

import argparse
import copy

import torch
from bench_train import round_robin  # scripts/ is on sys.path when a script in it runs

from nisqdiff.models import build_model
from nisqdiff.training import TrainConfig

VARIANTS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="classical")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cfg = TrainConfig()
    torch.manual_seed(0)
    model = build_model(args.arch)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    opts = {k: torch.optim.Adam(params, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, **kw) for k, kw in VARIANTS.items()}
    medians = round_robin({name: opt.step for name, opt in opts.items()}, 30 * args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.arch}: {len(params)} tensors, "
          f"{sum(p.numel() for p in params):,} parameters")  # fmt: skip
    for name, sec in medians.items():
        print(f"{name:<11} {sec * 1e3:7.2f} ms")
    a = build_model(args.arch)
    b = copy.deepcopy(a)
    for pa, pb in zip(a.parameters(), b.parameters()):
        pa.grad = torch.randn_like(pa)
        pb.grad = pa.grad.clone()
    loop = torch.optim.Adam(a.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, foreach=False)
    fused = torch.optim.Adam(b.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=True)
    for _ in range(10):
        loop.step(), fused.step()
    diff = max((pa - pb).abs().max().item() for pa, pb in zip(a.parameters(), b.parameters()))
    print(f"per-tensor vs fused after 10 steps: max |parameter difference| {diff:.1e}")


if __name__ == "__main__":
    main()
