"""Emulator (exact and trajectory methods) against Qiskit Aer's exact noisy simulation on the same circuit.

    python scripts/bench_emulator.py                        # fake_sherbrooke and fake_torino, N = 256 and 4096
    python scripts/bench_emulator.py --calibration fake_torino --aer-inputs 4 --threads 1

One HQConv circuit with random weights per calibration, transpiled once (level 3, as aer-noisy and the
emulator do), noise scale 1. Aer: the density-matrix method (exact; one run per input), timed on
--aer-inputs inputs and reported per input. Exact method: its one-off cost per circuit (compiling the noisy
channels + the Heisenberg pass) and its cost per input at each N, checked against Aer's values (max |diff|);
the speed-up includes the one-off cost amortised over the N inputs. Trajectories: one call with N inputs,
1024 shots split over T trajectories per input, compile time excluded.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from bench_train import sync  # scripts/ is on sys.path when a script in it runs
from nisqdiff.circuits.heisenberg import compile_exact
from nisqdiff.circuits.trajectories import run_program
from nisqdiff.devices import EmulatorDevice
from nisqdiff.devices.emulator import aer_exact_expval, emulator_program


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration", default="fake_sherbrooke,fake_torino")
    ap.add_argument("--n", default="256,4096", help="inputs per call (comma-separated)")
    ap.add_argument("--trajectories", default="8,32", help="trajectory counts to time at the smallest N ('' for none)")
    ap.add_argument("--shots", type=int, default=1024)
    ap.add_argument("--aer-inputs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch and Aer threads (0: their defaults)")
    ap.add_argument("--torch-device", default="cpu", help="cpu or cuda[:N] for the exact method and the trajectories")
    args = ap.parse_args()
    tdev = args.torch_device
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(n) for n in args.n.split(",")]
    for calibration in args.calibration.split(","):
        gen = torch.Generator().manual_seed(0)
        weights = torch.rand(84, generator=gen, dtype=torch.float64)
        inputs = torch.rand(max(sizes), 12, generator=gen, dtype=torch.float64) * 2 * math.pi
        dev = EmulatorDevice(calibration)
        circuit = dev.transpiled("hqconv", weights)
        t0 = time.perf_counter()
        prog = emulator_program(circuit, dev.snapshot, 1.0)  # Aer's gate errors of its qubits, then the channels
        compile_s = time.perf_counter() - t0
        print(f"{calibration}: {prog.stats}; noisy channels compiled in {compile_s:.1f} s (once per weights and scale)")
        t0 = time.perf_counter()
        ref = aer_exact_expval(circuit, dev.snapshot, 1.0, inputs[: args.aer_inputs], threads=args.threads)
        aer = (time.perf_counter() - t0) / args.aer_inputs
        print(f"  Aer density matrix (exact):  {aer:9.3f} s/input (over {args.aer_inputs} inputs)")
        t0 = time.perf_counter()
        exact = compile_exact(prog, tdev)
        one_off = compile_s + time.perf_counter() - t0
        err = float((exact.expval(inputs[: args.aer_inputs].to(tdev)).cpu() - ref).abs().max())
        print(f"  exact: one-off {one_off:.1f} s per circuit (channels + Heisenberg pass); max |<Z> - Aer| = {err:.1e}")
        for n in sizes:
            x = inputs[:n].to(tdev)
            sync()
            t0 = time.perf_counter()
            exact.expval(x)
            sync()
            per = (time.perf_counter() - t0) / n
            total = per + one_off / n
            print(f"  exact N={n:5d}: {per * 1e3:8.4f} ms/input evaluation, {total * 1e3:8.3f} ms/input with the one-off; "
                  f"speed-up over Aer {aer / total:8.0f}x (evaluation alone {aer / per:7.0f}x)")  # fmt: skip
        for t in [int(t) for t in args.trajectories.split(",") if t]:
            on_device, x = prog.to(tdev), inputs[: sizes[0]].float().to(tdev)
            sync()
            t0 = time.perf_counter()
            run_program(on_device, x, t, args.shots, torch.Generator(tdev).manual_seed(1))
            sync()
            emu = (time.perf_counter() - t0) / sizes[0]
            print(f"  trajectories N={sizes[0]}, T={t:3d}: {emu * 1e3:8.3f} ms/input  speed-up {aer / emu:6.1f}x")


if __name__ == "__main__":
    main()
