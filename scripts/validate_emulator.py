"""Validate the emulator against Qiskit Aer's exact noisy simulation (density matrix).

    python scripts/validate_emulator.py                       # fake_sherbrooke (ECR) and fake_torino (CZ)
    python scripts/validate_emulator.py --n 8 --trajectories 1024 --out docs/emulator_validation.json

For each calibration: one HQConv circuit with random weights (the "trained weights" stand-in; pass
--checkpoint to use a model's first circuit instead), transpiled once as aer-noisy and the emulator do,
N random inputs; at noise scales 0, 1 and 2 the emulator's <Z_q> (exact readout marginals averaged over
T trajectories, standard error from their spread) is compared with Aer's exact expectation values. Prints
per scale the largest |difference|, the largest |difference| / SE and the fraction within 4 SE (the
reference has no statistical error, so "combined" SE = the emulator's), and the correlation |r| between
qubits' Z outcomes within one shot (what the exact method's per-qubit binomial shots leave out). The exact method
(``--method exact``) is compared too: its largest |difference| from Aer (it has no statistical error, so
this is the whole story) and its one-off seconds per circuit.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from nisqdiff.circuits import expval
from nisqdiff.circuits.heisenberg import compile_exact
from nisqdiff.circuits.trajectories import run_program
from nisqdiff.devices import EmulatorDevice
from nisqdiff.devices.emulator import aer_exact_expval, aer_exact_probabilities, emulator_program


def circuit_and_weights(checkpoint: str | None, seed: int) -> tuple[str, torch.Tensor]:
    if checkpoint is None:
        return "hqconv", torch.rand(84, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    from nisqdiff.pipeline import DiffusionPipeline

    first = DiffusionPipeline.from_pretrained(checkpoint).unet.circuit_inventory()[0]
    return first["ansatz"], first["weights"]


def shot_correlations(probs: torch.Tensor) -> torch.Tensor:
    """|r_ij| (N * n(n-1)/2,) between the Z outcomes of qubits i != j in one shot, from the joint
    probabilities (N, 2^n) before readout: what the exact method's independent per-qubit (binomial) shot
    sampling leaves out (the estimates' covariance is r_ij sd_i sd_j / shots on hardware, 0 there)."""
    n = int(math.log2(probs.shape[1]))
    z = 1 - 2 * ((torch.arange(probs.shape[1])[:, None] >> torch.arange(n)[None, :]) & 1).double()  # (2^n, n)
    mean = probs @ z
    second = torch.einsum("ks,si,sj->kij", probs, z, z)
    cov = second - mean[:, :, None] * mean[:, None, :]
    sd = cov.diagonal(dim1=1, dim2=2).clamp_min(1e-12).sqrt()
    r = (cov / (sd[:, :, None] * sd[:, None, :])).abs()
    i, j = torch.triu_indices(n, n, 1)
    return r[:, i, j].flatten()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibrations", default="fake_sherbrooke,fake_torino")
    ap.add_argument("--scales", default="0,1,2")
    ap.add_argument("--n", type=int, default=4, help="random inputs per calibration")
    ap.add_argument("--trajectories", type=int, default=512)
    ap.add_argument("--checkpoint", default=None, help="use this model's first circuit (default: random weights)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()
    ansatz, weights = circuit_and_weights(args.checkpoint, args.seed)
    rows = []
    for cal in args.calibrations.split(","):
        dev = EmulatorDevice(cal, shots=None)
        circuit = dev.transpiled(ansatz, weights)
        n_in = circuit.num_parameters
        inputs = (
            torch.rand(args.n, n_in, generator=torch.Generator().manual_seed(args.seed + 1), dtype=torch.float64) * 2 * math.pi
        )
        ideal = expval(ansatz, inputs, weights)  # the noiseless values, to show the size of the noise
        for scale in map(float, args.scales.split(",")):
            prog = emulator_program(circuit, dev.snapshot, scale)
            t0 = time.perf_counter()
            z, se = run_program(prog, inputs.float(), args.trajectories, None, torch.Generator().manual_seed(args.seed + 2))
            t_emu = time.perf_counter() - t0
            t0 = time.perf_counter()
            probs = aer_exact_probabilities(circuit, dev.snapshot, scale, inputs)
            t_aer = time.perf_counter() - t0
            ref = aer_exact_expval(circuit, dev.snapshot, scale, inputs, probabilities=probs)
            corr = shot_correlations(probs)
            t0 = time.perf_counter()
            exact = compile_exact(prog).expval(inputs)
            t_exact = time.perf_counter() - t0
            exact_diff = float((exact - ref).abs().max())
            diff = (z.double() - ref).abs()
            ratio = diff / se.double().clamp_min(1e-12)
            row = {"calibration": cal, "basis_2q": "ecr" if "ecr" in dev.snapshot["basis_gates"] else "cz", "scale": scale,
                   "inputs": args.n, "values": diff.numel(), "trajectories": args.trajectories,
                   "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "mean_se": float(se.mean()),
                   "max_diff_over_se": float(ratio.max()) if scale else None,
                   "within_4se": float((diff <= 4 * se.double() + 1e-6).double().mean()),
                   "mean_abs_noise_effect": float((ref - ideal).abs().mean()),
                   "exact_max_abs_diff": exact_diff, "max_abs_shot_correlation": float(corr.max()),
                   "mean_abs_shot_correlation": float(corr.mean()), "exact_s": round(t_exact, 2),
                   "emulator_s": round(t_emu, 2), "aer_dm_s": round(t_aer, 2), **prog.stats}  # fmt: skip
            rows.append(row)
            print(f"{cal:16s} scale {scale:3.1f}: max|diff| {row['max_abs_diff']:.4f}  mean SE {row['mean_se']:.4f}  "
                  f"max|diff|/SE {row['max_diff_over_se'] or 0:.2f}  within 4 SE {100 * row['within_4se']:.0f}%  "
                  f"mean|noisy - ideal| {row['mean_abs_noise_effect']:.3f}  exact: max|diff| {exact_diff:.1e}  "
                  f"shot correlation |r| mean {float(corr.mean()):.3f} max {float(corr.max()):.3f}  "
                  f"(trajectories {t_emu:.1f} s, exact {t_exact:.1f} s, Aer density matrix {t_aer:.1f} s)", flush=True)  # fmt: skip
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"ansatz": ansatz, "checkpoint": args.checkpoint, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
