"""The U-Net's compiled kernels (nisqdiff.models.fused) against its torch path, alternating in one process.

    python scripts/bench_fused.py --threads 2 --repeats 5
    python scripts/bench_fused.py --threads 1 --archs classical,1hqconv

Prints, per architecture, the median seconds of a sampling forward (batch 256, EMA-free model, no grad,
fp32) and of a training step (batch 128: forward, backward, Adam) with bf16 autocast and in fp32, each with
the kernels and with them switched off (``fused.torch_only``), the two alternating so that the machine's
drift falls on both; then the linear attention alone (forward and backward, batch 128) at the U-Net's two
largest resolutions. Compare the ratios, not the seconds across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from nisqdiff.models import build_model, fused
from nisqdiff.models.layers import LinearAttention


def alternate(fn, repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn`` with the kernels and without, over ``repeats`` alternations after a warm-up."""
    times = {True: [], False: []}
    for r in range(repeats + 1):
        for kernels in (False, True):
            with nullcontext() if kernels else fused.torch_only():
                t0 = time.perf_counter()
                fn()
                if r:
                    times[kernels].append(time.perf_counter() - t0)
    return statistics.median(times[False]), statistics.median(times[True])


def row(name: str, torch_s: float, kernel_s: float) -> None:
    print(f"{name:<40} {torch_s:8.3f} {kernel_s:8.3f} {kernel_s / torch_s:7.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="classical,1hqconv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not fused.fits(torch.zeros(1, 10, 2, 2)):
        raise SystemExit("the compiled kernels are not available here (see the warning above)")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} alternations")
    print(f"{'':<40} {'torch s':>8} {'kernel s':>8} {'ratio':>8}")
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = build_model(arch)
        x, t = torch.randn(256, 1, 28, 28), torch.randint(0, 1000, (256,))

        def sample():
            with torch.no_grad():
                model(x, t)

        row(f"{arch} sampling forward, batch 256", *alternate(sample, args.repeats))
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        for amp in (True, False):

            def step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    loss = (model(x[:128], t[:128]).float() - x[:128]).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

            row(f"{arch} training step, {'bf16' if amp else 'fp32'}", *alternate(step, args.repeats))
    for c, size in ((10, 28), (20, 14)):
        attn = LinearAttention(c)
        xa = torch.randn(128, c, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()

        def attend():
            attn(xa).square().sum().backward()

        row(f"attention {c}x{size}x{size}, fwd+bwd, fp32", *alternate(attend, args.repeats))


if __name__ == "__main__":
    main()
