"""Benchmark one training step (batch 128) and one sampling forward (batch 256) per architecture.

    python scripts/bench_train.py                     # all architectures, the precision `nisqdiff train` picks
    python scripts/bench_train.py --no-amp --archs classical,1hqconv --repeats 7
    python scripts/bench_train.py --archs classical --official ../Quantum-Hybrid-Diffusion-Models \\
        --official-python ../jax-env/bin/python     # also the official JAX code's step (scripts/bench_official.py)

Every case (architecture x training step, fp32 and bf16 sampling forward) runs once per round, in turn,
for ``--repeats`` rounds after one warm-up round, so that a slow minute of the machine (timings on the
development VM drift by 10-20% within minutes) hits every architecture alike. Prints, per architecture,
the median seconds of a training step (forward, backward, Adam, EMA
update) and its rate in GFLOP/s (the step's matmul and convolution FLOPs, forward and backward, as
``torch.utils.flop_counter`` counts them; compare with the CPU's dense matmul rate in
../shared/MEASUREMENTS.md) and of a sampling forward (EMA model, no grad; fp32 and, as `sample --precision bf16`, bf16
autocast), each as a ratio to `classical` measured in the same run, and the time a 20-epoch run
(9,375 steps) would take.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from nisqdiff.diffusion import GaussianDiffusion
from nisqdiff.models import ARCHS, build_model
from nisqdiff.pipeline import native_bf16
from nisqdiff.training import EMA, TrainConfig


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # CUDA kernels run asynchronously: time what they did


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases(arch: str, amp: bool, train_batch: int, sample_batch: int, device: str = "cpu") -> dict:
    """One architecture's timed functions (``train_step_s``, ``sample_forward_s``, ``sample_bf16_s``) and the
    FLOPs of its training step (``train_gflop``)."""
    torch.manual_seed(0)
    model = build_model(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8, fused=True)  # as training.py
    ema = EMA(model, TrainConfig())
    diffusion = GaussianDiffusion()
    x = torch.rand(train_batch, *model.image_shape, device=device) * 2 - 1

    def train_step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            loss = diffusion.loss(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model, 110)  # a step on which the EMA really updates

    xs = torch.randn(sample_batch, *model.image_shape, device=device)
    ts = torch.full((sample_batch,), 500, device=device)

    def sample_forward(bf16: bool):
        with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            ema.model(xs, ts)

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as flops:  # matmuls and convolutions of one step, forward and backward
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            loss = diffusion.loss(model, x)
        loss.backward()
    opt.zero_grad(set_to_none=True)
    return {"train_gflop": flops.get_total_flops() / 1e9,
            "timed": {"train_step_s": train_step, "sample_forward_s": lambda: sample_forward(False),
                      "sample_bf16_s": lambda: sample_forward(True)}}  # fmt: skip


def round_robin(fns: dict, rounds: int) -> dict:
    """Median seconds of each function of ``fns`` over ``rounds`` rounds in which every one runs once, in
    turn, after a warm-up round: a slow minute of the machine then hits every case alike (the benchmarks'
    shared timing loop)."""
    for fn in fns.values():
        fn()
    times: dict = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(t) for key, t in times.items()}


def bench_rounds(archs: list[str], amp: bool, repeats: int, train_batch: int, sample_batch: int,
                 device: str = "cpu") -> list[dict]:  # fmt: skip
    """Medians per architecture over ``repeats`` rounds in which every case runs once, in turn."""
    prepared = {a: cases(a, amp, train_batch, sample_batch, device) for a in archs}
    medians = round_robin({(a, n): fn for a, c in prepared.items() for n, fn in c["timed"].items()}, repeats)
    return [{"arch": a, "train_gflop": c["train_gflop"], **{n: medians[(a, n)] for n in c["timed"]}}
            for a, c in prepared.items()]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--sample-batch", type=int, default=256)
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast in the training step (default: as `nisqdiff train`, where the CPU has native bf16)")
    ap.add_argument("--torch-device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--official", default=None, help="checkout of the official JAX code: time its classical step too")
    ap.add_argument("--official-python", default=sys.executable, help="interpreter with jax/flax for --official")
    args = ap.parse_args()
    archs = args.archs.split(",")
    if "classical" not in archs:
        archs.insert(0, "classical")
    amp = native_bf16(args.torch_device) if args.amp is None else args.amp
    rows = bench_rounds(archs, amp, args.repeats, args.train_batch, args.sample_batch, args.torch_device)
    base = rows[0]
    print(f"torch {torch.__version__}, {args.torch_device}, {torch.get_num_threads()} threads, amp={'bf16' if amp else 'off'}")
    print(f"{'arch':<11} {'train s':>8} {'ratio':>6} {'GFLOP/s':>8} {'sample s':>9} {'ratio':>6} {'bf16 s':>7} {'ratio':>6} {'20 epochs':>10}")
    for r in rows:
        r["train_ratio"] = r["train_step_s"] / base["train_step_s"]
        r["sample_ratio"] = r["sample_forward_s"] / base["sample_forward_s"]
        r["sample_bf16_ratio"] = r["sample_bf16_s"] / base["sample_bf16_s"]
        r["twenty_epochs_h"] = r["train_step_s"] * 9375 / 3600
        r["train_gflop_per_s"] = r["train_gflop"] / r["train_step_s"]
        if args.json:
            print(json.dumps(r))
        else:
            print(
                f"{r['arch']:<11} {r['train_step_s']:>8.3f} {r['train_ratio']:>5.2f}x {r['train_gflop_per_s']:>8.1f} {r['sample_forward_s']:>9.3f} "
                f"{r['sample_ratio']:>5.2f}x {r['sample_bf16_s']:>7.3f} {r['sample_bf16_ratio']:>5.2f}x {r['twenty_epochs_h']:>9.1f}h"
            )
    if args.official:
        official(args, base)


def official(args, base: dict) -> None:
    """Run scripts/bench_official.py in ``--official-python`` and print its classical figures beside ours."""
    script = Path(__file__).with_name("bench_official.py")
    cmd = [args.official_python, str(script), "--official", args.official, "--repeats", str(args.repeats),
           "--sample-batch", str(args.sample_batch)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"official JAX code: not run ({last})")
        return
    o = json.loads(done.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps({"official": o}))
        return
    print(f"official JAX code (jax {o['jax']}, batch {o['batch']}): classical step {o['train_step_s']:.3f} s "
          f"(compile {o['train_compile_s']:.0f} s), ours {base['train_step_s'] / o['train_step_s']:.2f}x of it; "
          f"sampling forward {o['sample_forward_s']:.3f} s, ours fp32 {base['sample_forward_s'] / o['sample_forward_s']:.2f}x, "
          f"bf16 {base['sample_bf16_s'] / o['sample_forward_s']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
