"""Circuits per second on each simulated device: one call (one PUB) for N inputs against one call per circuit.

    python scripts/bench_devices.py                      # shots and aer (both samplers) at N=256, aer-noisy at N=4, 1024 / 128 shots
    python scripts/bench_devices.py --n 256 --noisy-n 8 --noisy-shots 1024

One HQConv circuit with random weights; transpilation happens once before timing (as in sampling).
Batched: median of --repeats calls with all N inputs; per-call: the median of --single-calls calls with
one input each. Where the device reports its simulator's own time (aer), the bound that time puts on the
speedup is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_train import median_time  # scripts/ is on sys.path when a script in it runs

from nisqdiff.devices import make_device


def measure(device, n: int, single_calls: int, repeats: int) -> tuple[float, float, float | None]:
    """(batched circuits/s, one-call-per-circuit circuits/s, circuits/s of the simulator's own time
    in a batched call where the device reports it)."""
    torch.manual_seed(0)
    w = torch.rand(1, 84, dtype=torch.float64)
    x = torch.rand(1, n, 12, dtype=torch.float64) * 3
    device.run("hqconv", x[:, :1], w)  # transpile / warm up
    batched = median_time(lambda: device.run("hqconv", x, w), repeats)
    sim = device.run("hqconv", x, w).metadata.get("simulator_seconds")
    times = []
    for i in range(single_calls):  # the median call: a conservative per-call cost (slow outliers left out)
        t0 = time.perf_counter()
        device.run("hqconv", x[:, i % n : i % n + 1], w)
        times.append(time.perf_counter() - t0)
    single = statistics.median(times)
    return n / batched, 1 / single, (n / sim if sim else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--shots", type=int, default=1024)
    ap.add_argument("--single-calls", type=int, default=32)
    ap.add_argument("--noisy-n", type=int, default=4)
    ap.add_argument("--noisy-shots", type=int, default=128)
    ap.add_argument("--calibration", default="fake_sherbrooke")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'device':<28} {'N':>4} {'shots':>6} {'batched c/s':>12} {'per-call c/s':>13} {'speedup':>8}")
    runs = [
        ("shots", make_device("shots", shots=args.shots), args.n, args.shots, args.single_calls),
        ("aer", make_device("aer", shots=args.shots), args.n, args.shots, args.single_calls),
        ("aer (Aer's SamplerV2)", make_device("aer-samplerv2", shots=args.shots), args.n, args.shots, args.single_calls),
        (
            f"aer-noisy {args.calibration}@1",
            make_device("aer-noisy", shots=args.noisy_shots, calibration=args.calibration),
            args.noisy_n,
            args.noisy_shots,
            2,
        ),
    ]
    ceilings = []
    for label, device, n, shots, single_calls in runs:
        batched, single, sim = measure(device, n, single_calls, args.repeats if n > 16 else 1)
        print(f"{label:<28} {n:>4} {shots:>6} {batched:>12.1f} {single:>13.2f} {batched / single:>7.1f}x")
        if sim:
            ceilings.append(f"{label}: Aer's own simulation {sim:.0f} c/s, so at most {sim / single:.1f}x with zero overhead")
    print("\n".join(ceilings))
    stages, steps, images = 4, 50, 64  # a 1hqconv model: 4 circuit stages per denoising step
    print(f"ibm jobs for {images} images x {steps} DDIM steps of 1hqconv: batched {stages * steps} "
          f"(stages x steps), one circuit per call {stages * steps * images} ({images}x)")  # fmt: skip


if __name__ == "__main__":
    main()
