"""Circuit simulation speed: our methods against PennyLane's default.qubit, forward + backward.

    python scripts/bench_circuits.py                 # 512 circuits per call (one 1hqconv training step)
    python scripts/bench_circuits.py --batch 6272    # one quanv convolution (49 patches x 128 images)
    python scripts/bench_circuits.py --batch 6272 --methods chain --no-pennylane   # quanv's chain stage only
    python scripts/bench_circuits.py --circuits 7 --batch 128 --methods chain --no-pennylane  # 7hqconv's stage

Prints, per ansatz and method, the median seconds of one call on ``--batch`` inputs for each of
``--circuits`` sets of weights (one circuit stage) including the backward pass to inputs and weights, and
microseconds per circuit execution.
PennyLane runs with backprop and parameter broadcasting (its fastest differentiable torch path here).
For HQConv with ``chain`` (the compiled kernel, nisqdiff/circuits/native.py), also ``chain/t``: the same
in torch, and the forward alone without gradients (sampling) both ways (``chain fwd``, ``chain fwd/t``).
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from bench_train import median_time  # scripts/ is on sys.path when a script in it runs

from nisqdiff.circuits import ANSATZE, chain, native, simulate
from nisqdiff.circuits.chain import supports
from nisqdiff.circuits.reference import pennylane_qnode


def _run(ansatz: str, x: torch.Tensor, w: torch.Tensor, kernel: bool, grad: bool) -> None:
    """The chain forward (and with ``grad`` its backward) in the compiled kernel or in torch."""
    with torch.set_grad_enabled(grad), contextlib.nullcontext() if kernel else chain.torch_only():
        z = simulate(ansatz, x, w, method="chain")
        if grad:
            z.sum().backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512, help="inputs per circuit")
    ap.add_argument("--circuits", type=int, default=1, help="circuits (sets of weights) in the stage")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-pennylane", action="store_true")
    ap.add_argument("--methods", default="statevector,chain", help="our methods to time (comma-separated)")
    ap.add_argument("--torch-device", default="cpu", help="cpu or cuda[:N] (PennyLane stays on the CPU)")
    args = ap.parse_args()
    dev = args.torch_device
    print(f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads, {args.circuits} x {args.batch} inputs, "
          "float32/complex64")
    print(f"{'ansatz':<7} {'method':<12} {'seconds':>8} {'us/circuit':>11}")
    for ansatz, spec in ANSATZE.items():
        x = (torch.rand(args.circuits, args.batch, spec.n_qubits, device=dev) * 2 - 1).requires_grad_()
        w = torch.rand(args.circuits, spec.n_weights, device=dev).requires_grad_()
        methods = [m for m in args.methods.split(",") if m != "chain" or supports(ansatz)]
        runs = {m: (lambda m=m, a=ansatz, x=x, w=w: simulate(a, x, w, method=m).sum().backward()) for m in methods}
        if not args.no_pennylane:
            xc, wc = x.detach().cpu().requires_grad_(), w.detach().cpu().requires_grad_()
            runs["pennylane"] = lambda q=pennylane_qnode(ansatz), x=xc, w=wc: sum(q(a, b).sum() for a, b in zip(x, w)).backward()
        if "chain" in methods and native.available() and dev == "cpu":
            xd, wd = x.detach(), w.detach()
            runs["chain/t"] = lambda a=ansatz, x=x, w=w: _run(a, x, w, kernel=False, grad=True)
            runs["chain fwd"] = lambda a=ansatz, x=xd, w=wd: _run(a, x, w, kernel=True, grad=False)
            runs["chain fwd/t"] = lambda a=ansatz, x=xd, w=wd: _run(a, x, w, kernel=False, grad=False)
        for name, fn in runs.items():
            sec = median_time(fn, args.repeats)
            print(f"{ansatz:<7} {name:<12} {sec:>8.4f} {sec / (args.circuits * args.batch) * 1e6:>11.1f}")


if __name__ == "__main__":
    main()
