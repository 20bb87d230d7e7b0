"""Statistics of quantum noise pools before and after extraction (docs/qrng.md).

    python scripts/qrng_stats.py --device emulator --calibration fake_sherbrooke --scales 1,5 --gaussians 200000

For each noise scale, draws a pool on ``--device`` (aer-noisy or emulator; H on 12 qubits, measured) twice, without extraction and
with von Neumann's, and prints per pool: the largest per-qubit bias of the bits, and for its Gaussians the
Kolmogorov-Smirnov p-value against N(0, 1), mean, variance, skewness, excess kurtosis and lag-1 serial
correlation, each with the 4-sigma bound an ideal source would stay within.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.qrng import Pool


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="aer-noisy", choices=("aer-noisy", "emulator"))
    ap.add_argument("--calibration", default="fake_sherbrooke")
    ap.add_argument("--scales", default="1,5")
    ap.add_argument("--gaussians", type=int, default=200_000)
    args = ap.parse_args()
    n = args.gaussians
    print(f"{n:,} Gaussians per pool; 4-sigma bounds of an ideal source: mean {4 / n**0.5:.4f}, variance 1 +- {4 * (2 / n) ** 0.5:.4f}, "
          f"skewness {4 * (6 / n) ** 0.5:.4f}, kurtosis {4 * (24 / n) ** 0.5:.4f}, lag-1 correlation {4 / n**0.5:.4f}")
    print("| noise scale | extractor | max bias P(1)-1/2 | raw bits | KS p | mean | variance | skewness | kurtosis | lag-1 corr |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales.split(","):
            for extractor in ("none", "von-neumann"):
                path = Path(tmp) / f"{scale}-{extractor}.npz"
                res = CliRunner().invoke(app, ["qrng", "--bits", str(32 * n), "--out", str(path), "--device", args.device,
                                               "--calibration", args.calibration, "--noise-scale", scale, "--extractor", extractor])
                assert res.exit_code == 0, res.output
                pool = Pool(path)
                z = pool.gaussians(0, pool.capacity).double().numpy()
                key = "p1_raw" if extractor == "none" else "p1_out"
                bias = max(abs(q[key] - 0.5) for q in pool.provenance["per_qubit"])
                print(f"| {scale} | {extractor} | {bias:.4f} | {pool.provenance['raw_bits']:,} | {stats.kstest(z, 'norm').pvalue:.2g} | "
                      f"{z.mean():+.4f} | {z.var():.4f} | {stats.skew(z):+.4f} | {stats.kurtosis(z):+.4f} | "
                      f"{np.corrcoef(z[:-1], z[1:])[0, 1]:+.4f} |")


if __name__ == "__main__":
    main()
