"""How much does a trained hybrid U-Net depend on its circuits? Run it before spending device time.

    python scripts/circuit_influence.py --checkpoint runs/mnist-1hqconv/checkpoint.pt --data-dir ../shared/data

For N test images noised to x_t at each t, the EMA model predicts epsilon with exact circuits (``noiseless``)
and with every circuit output replaced by 0 (``depolarized``, the infinite-noise limit). Prints, per t, the
relative change ||eps_depolarized - eps_noiseless|| / ||eps_noiseless||, the same for the outputs of the
hybrid layers that hold the circuits, and the epsilon MSE against the true noise for both. A model whose
epsilon barely moves cannot lose image quality to circuit noise, whatever the device.
"""

from __future__ import annotations

import argparse

import torch

from nisqdiff.circuits import ExactSimulator
from nisqdiff.data import load_images
from nisqdiff.devices import make_device
from nisqdiff.pipeline import DiffusionPipeline


def predict(model, executor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(epsilon (N, C, 28, 28), the outputs of every layer that holds circuits) with ``executor`` behind them."""
    from nisqdiff.models.hybrid import CircuitStage

    hybrid = [m for m in model.modules() if any(isinstance(c, CircuitStage) for c in m.children())]
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in hybrid]
    model.set_executor(executor)
    try:
        with torch.no_grad():
            return model(x_t, t), seen
    finally:
        for h in hooks:
            h.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--num", type=int, default=64, help="test images")
    ap.add_argument("--steps", default="50,250,500,750,950", help="diffusion steps t to probe")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pipe = DiffusionPipeline.from_pretrained(args.checkpoint)
    model = pipe.unet
    if not model.circuits():
        raise SystemExit(f"{pipe.arch} has no circuits")
    x0, _ = load_images(pipe.info["dataset"], "test", args.data_dir, args.num)
    diffusion = pipe.scheduler
    noiseless, depolarized = ExactSimulator(), make_device("depolarized")
    gen = torch.Generator().manual_seed(args.seed)
    print(f"{pipe.arch} ({args.checkpoint}, step {pipe.info['step']}), {len(x0)} test images")
    print(f"{'t':>5} {'d eps / eps':>12} {'d layer / layer':>16} {'MSE noiseless':>14} {'MSE depolarized':>16}")
    for t_value in (int(s) for s in args.steps.split(",")):
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.full((len(x0),), t_value, dtype=torch.long)
        x_t = diffusion.q_sample(x0, t, noise)
        eps, layers = predict(model, noiseless, x_t, t)
        eps0, layers0 = predict(model, depolarized, x_t, t)
        d_eps = float((eps0 - eps).norm() / eps.norm())
        d_layers = float(sum((b - a).norm() ** 2 for a, b in zip(layers, layers0)) / sum(a.norm() ** 2 for a in layers)) ** 0.5
        mse, mse0 = float((eps - noise).square().mean()), float((eps0 - noise).square().mean())
        print(f"{t_value:>5} {d_eps:>12.2e} {d_layers:>16.2e} {mse:>14.5f} {mse0:>16.5f}")


if __name__ == "__main__":
    main()
