"""Readout mitigation and ZNE on the emulator for the first circuit of a trained model: mean |<Z> - ideal|.

    python scripts/mitigation_emulator.py            # runs/mnist-1hqconv/checkpoint.pt, fake_sherbrooke

64 random inputs, exact readout marginals averaged over 64 trajectories (no shots), noise scales 1 and 2;
prints a Markdown table row per (scale, mitigation): mean |<Z> - ideal|, mean standard error, seconds.
"""

import math
import sys
import time

import torch

from nisqdiff.circuits import expval
from nisqdiff.devices import EmulatorDevice
from nisqdiff.pipeline import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else "runs/mnist-1hqconv/checkpoint.pt")
w = pipe.unet.circuit_inventory()[0]["weights"].float()
x = torch.rand(64, 12, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
ideal = expval("hqconv", x, w)
for scale in (1.0, 2.0):
    for label, opts in [
        ("raw", {}),
        ("+readout", {"mitigate_readout": True}),
        ("+zne", {"zne": (1.0, 2.0)}),
        ("+readout+zne", {"mitigate_readout": True, "zne": (1.0, 2.0)}),
    ]:
        t0 = time.time()
        r = EmulatorDevice("fake_sherbrooke", noise_scale=scale, shots=None, trajectories=64, seed=0, **opts).run("hqconv", x[None], w[None])
        err = (r.evs[0] - ideal).abs()
        print(
            f"| {scale:.0f} | {label} | {float(err.mean()):.4f} | {float(r.stds.mean()):.4f} | {time.time() - t0:.0f} |",
            flush=True,
        )
