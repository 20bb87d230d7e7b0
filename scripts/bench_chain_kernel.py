"""Whole models with HQConv's chain in the compiled kernel against the torch chain, alternating in one process.

    python scripts/bench_chain_kernel.py                                   # classical,1hqconv,fullhqconv,quanv
    python scripts/bench_chain_kernel.py --archs classical,quanv --rounds 9

Prints, per architecture and chain path, the median seconds of a training step's forward and backward
(batch 128, bf16 autocast as `nisqdiff train`; no optimizer step) and of a sampling forward (batch 256,
fp32, no grad), each as a ratio to classical, over ``--rounds`` rounds in which every case runs once in
turn (so that a slow minute of the machine hits every case alike). The kernel is
nisqdiff/circuits/native.py; the torch path is what runs without it (``NISQDIFF_NATIVE=0``,
``nisqdiff.circuits.chain.torch_only``).
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from bench_train import round_robin  # scripts/ is on sys.path when a script in it runs

from nisqdiff.circuits import chain, native
from nisqdiff.diffusion import GaussianDiffusion
from nisqdiff.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="classical,1hqconv,fullhqconv,quanv")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    if not native.available():
        raise SystemExit("the compiled kernel is not available here (see the warning above); nothing to compare")
    archs = args.archs.split(",")
    torch.manual_seed(0)
    models = {a: build_model(a) for a in archs}
    diffusion = GaussianDiffusion()
    x_train, x_sample = torch.randn(128, 1, 28, 28), torch.randn(256, 1, 28, 28)
    t_sample = torch.randint(0, 1000, (256,))

    def run(arch: str, kernel: bool, job: str) -> None:
        model = models[arch]
        with contextlib.nullcontext() if kernel else chain.torch_only():
            if job == "train":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = diffusion.loss(model, x_train)
                loss.backward()
            else:
                with torch.no_grad():
                    model(x_sample, t_sample)
        model.zero_grad(set_to_none=True)

    cases = [(a, k, j) for j in ("train", "sample") for a in archs for k in ((True,) if a == "classical" else (True, False))]
    medians = round_robin({case: (lambda c=case: run(*c)) for case in cases}, args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.rounds} rounds")
    print(f"{'arch':<11} {'chain':<7} {'train s':>8} {'ratio':>6} {'sample s':>9} {'ratio':>6}")
    base = {j: medians[("classical", True, j)] for j in ("train", "sample")} if "classical" in archs else None
    for arch, kernel, _ in [c for c in cases if c[2] == "train"]:
        row = f"{arch:<11} {'kernel' if kernel else 'torch':<7}"
        for job in ("train", "sample"):
            m = medians[(arch, kernel, job)]
            row += f" {m:>8.3f} {m / base[job]:>5.2f}x" if base else f" {m:>8.3f}"
        print(row)


if __name__ == "__main__":
    main()
