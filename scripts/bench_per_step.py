"""What caching the per-step constants of sampling could save: their cost against one sampling forward.

    python scripts/bench_per_step.py                          # classical and 1hqconv, batches 16, 64, 256
    python scripts/bench_per_step.py --archs quanv --batches 256 --repeats 7

During sampling the EMA weights are frozen, yet every denoising step recomputes three things that depend
only on them or on the schedule: the weight standardisation of every ``WSConv2d`` (mean and variance of
each filter), the time embedding of the step's t (sinusoid, Linear, GELU, Linear), and the fused circuit
matrices of every circuit stage (``simulator.block_matrices``). Prints, per architecture and batch, the
median milliseconds of one sampling forward (EMA-style model in eval mode, no grad, fp32) and of each of
the three, and what share of the forward they are together: the most that caching them could save.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nisqdiff.circuits.simulator import block_matrices
from nisqdiff.models import build_model
from nisqdiff.models.layers import WSConv2d


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def standardise_all(convs: list[WSConv2d]) -> None:
    """What every WSConv2d.forward computes before its convolution."""
    for conv in convs:
        w = conv.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        (w - mean) * torch.rsqrt(var + 1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="classical,1hqconv")
    parser.add_argument("--batches", default="16,64,256")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; milliseconds, median of {args.repeats}")
    print(f"{'arch':<11} {'batch':>5} {'forward':>9} {'ws':>7} {'t_emb':>7} {'circuit':>8} {'share':>7}")
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = build_model(arch).eval()
        convs = [m for m in model.modules() if isinstance(m, WSConv2d)]
        stages = model.circuits() if hasattr(model, "circuits") else []
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.randn(batch, *model.image_shape)
            t = torch.full((batch,), 500, dtype=torch.long)
            with torch.no_grad():
                fwd = median_ms(lambda: model(x, t), args.repeats)
                ws = median_ms(lambda: standardise_all(convs), args.repeats)
                emb = median_ms(lambda: model.time_mlp(t), args.repeats)
                circ = median_ms(lambda: [block_matrices(s.ansatz, s.weights.float()) for s in stages], args.repeats)
            share = (ws + emb + circ) / fwd
            print(f"{arch:<11} {batch:>5} {fwd:>9.1f} {ws:>7.2f} {emb:>7.2f} {circ:>8.2f} {share:>6.1%}")


if __name__ == "__main__":
    main()
