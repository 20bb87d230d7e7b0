"""Qiskit Aer configurations for a noisy, transpiled HQConv circuit: circuits per second for each.

    python scripts/bench_aer_noisy.py                          # fake_sherbrooke, N=2 inputs, 128 shots
    python scripts/bench_aer_noisy.py --calibration fake_torino --n 4 --shots 1024 --configs density_matrix

The circuit is the aer-noisy device's (one HQConv circuit with random weights, transpiled once at level 3
against the calibration); each configuration runs one SamplerV2 PUB of N inputs and reports circuits per
second and the mean |<Z>| difference to the default configuration (a faithfulness check: trajectory
methods differ by shot noise only, and the density matrix is exact before its shots are sampled).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nisqdiff.calibration import load_calibration, noise_model
from nisqdiff.circuits.qiskit_build import input_columns, z_from_bits
from nisqdiff.devices import make_device

CONFIGS = {
    "statevector": {"method": "statevector"},  # the aer-noisy device: one noise trajectory per shot
    "statevector_serial": {"method": "statevector", "max_parallel_experiments": 1},
    "parallel_shots": {"method": "statevector", "max_parallel_experiments": 1, "max_parallel_shots": 0},
    "shot_branching": {"method": "statevector", "shot_branching_enable": True},
    "shot_branching_sampling": {"method": "statevector", "shot_branching_enable": True, "shot_branching_sampling_enable": True},
    "single_precision": {"method": "statevector", "precision": "single"},
    "no_fusion": {"method": "statevector", "fusion_enable": False},
    "density_matrix": {"method": "density_matrix"},  # exact mixed state, then the shots are sampled from it
    "density_matrix_single": {"method": "density_matrix", "precision": "single"},
}


def run(config: dict, circuit, values: np.ndarray, noise, shots: int, seed: int) -> tuple[float, np.ndarray]:
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import SamplerV2

    opts = {"max_parallel_experiments": 0, **config}
    backend = AerSimulator(noise_model=noise, seed_simulator=seed, **opts)
    sampler = SamplerV2.from_backend(backend, seed=seed, default_shots=shots)
    t0 = time.perf_counter()
    result = sampler.run([(circuit, values)], shots=shots).result()[0]
    seconds = time.perf_counter() - t0
    return seconds, z_from_bits(result.data.meas, 12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration", default="fake_sherbrooke")
    ap.add_argument("--noise-scale", type=float, default=1.0)
    ap.add_argument("--n", type=int, default=2, help="inputs (parameter sets) in the PUB")
    ap.add_argument("--shots", type=int, default=128)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    args = ap.parse_args()
    torch.manual_seed(0)
    device = make_device("aer-noisy", calibration=args.calibration, shots=16)
    circuit = device.transpiled("hqconv", torch.rand(84, dtype=torch.float64))
    values = (torch.rand(args.n, 12, dtype=torch.float64) * 3).numpy()[:, input_columns(circuit)]
    noise = noise_model(load_calibration(args.calibration), args.noise_scale)
    ops = circuit.count_ops()
    print(f"{args.calibration} @ {args.noise_scale}: {circuit.metadata['two_qubit_gates']} two-qubit gates, "
          f"{sum(ops.values())} operations; N={args.n}, {args.shots} shots")  # fmt: skip
    print(f"{'configuration':<26} {'s/circuit':>10} {'circuits/s':>11} {'mean |dZ| vs first':>19}")
    first = None
    for name in args.configs.split(","):
        seconds, z = run(CONFIGS[name], circuit, values, noise, args.shots, seed=1)
        first = z if first is None else first
        print(f"{name:<26} {seconds / args.n:>10.2f} {args.n / seconds:>11.3f} {np.abs(z - first).mean():>19.4f}", flush=True)


if __name__ == "__main__":
    main()
