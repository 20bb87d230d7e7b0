"""Emulator against Qiskit Aer's exact noisy simulation on the same transpiled circuit: circuits per second.

    python scripts/bench_emulator.py                        # fake_sherbrooke, N = 256, trajectories 8 and 32
    python scripts/bench_emulator.py --calibration fake_torino --aer-inputs 4 --threads 1

One HQConv circuit with random weights, transpiled once (level 3, as aer-noisy and the emulator do), noise
scale 1. Aer: the density-matrix method (exact; its cost does not depend on N's batching, one run per input),
timed on --aer-inputs inputs and reported per circuit. Emulator: one call with N inputs, 1024 shots split over
T trajectories per input, compile time excluded (once per weights; printed). Speedup = Aer seconds per
circuit / emulator seconds per circuit.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from nisqdiff.circuits.trajectories import run_program
from nisqdiff.devices import EmulatorDevice
from nisqdiff.devices.emulator import aer_exact_expval, emulator_program


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration", default="fake_sherbrooke")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--trajectories", default="8,32")
    ap.add_argument("--shots", type=int, default=1024)
    ap.add_argument("--aer-inputs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch and Aer threads (0: their defaults)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(84, generator=gen, dtype=torch.float64)
    inputs = torch.rand(args.n, 12, generator=gen) * 2 * math.pi
    dev = EmulatorDevice(args.calibration)
    circuit = dev.transpiled("hqconv", weights)
    t0 = time.perf_counter()
    prog = emulator_program(circuit, dev.snapshot, 1.0)
    print(f"{args.calibration}: {prog.stats}; compile {time.perf_counter() - t0:.1f} s (once per weights and scale)")
    t0 = time.perf_counter()
    aer_exact_expval(circuit, dev.snapshot, 1.0, inputs[: args.aer_inputs].double(), threads=args.threads)
    aer = (time.perf_counter() - t0) / args.aer_inputs
    print(f"Aer density matrix (exact):      {aer:8.3f} s/circuit  {1 / aer:9.2f} circuits/s  (over {args.aer_inputs} inputs)")
    for t in map(int, args.trajectories.split(",")):
        t0 = time.perf_counter()
        run_program(prog, inputs, t, args.shots, torch.Generator().manual_seed(1))
        emu = (time.perf_counter() - t0) / args.n
        print(
            f"emulator N={args.n}, {t:3d} trajectories: {emu:8.4f} s/circuit  {1 / emu:9.2f} circuits/s  speedup {aer / emu:6.1f}x"
        )


if __name__ == "__main__":
    main()
