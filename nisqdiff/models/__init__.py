"""U-Net models: classical layers, hybrid blocks, the two U-Net families and the architecture registry."""

from __future__ import annotations

from dataclasses import asdict

from torch import nn

from .archs import ARCHS, ArchConfig, bottleneck_name, get_arch
from .bottleneck import BottleneckUNet
from .unet import UNet


def build_model(arch: str) -> nn.Module:
    """A fresh model of architecture ``arch``: :class:`UNet` (De Falco et al.) or :class:`BottleneckUNet`
    (Chen et al.). :class:`~nisqdiff.errors.UsageError` for an unknown name."""
    return (BottleneckUNet if get_arch(arch).family == "bottleneck" else UNet)(arch)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def arch_summary(name: str) -> dict:
    """Name, trainable parameters, circuit count (per image forward), qubits per circuit, paper count."""
    from ..circuits import get_spec

    model, cfg = build_model(name), get_arch(name)
    circuits = model.circuits()
    return {
        "arch": name,
        "params": count_parameters(model),
        "paper_params": cfg.paper_params,
        "circuits": sum(c.n_circuits for c in circuits),
        "qubits": sorted({get_spec(c.ansatz).n_qubits for c in circuits}),
        **{k: v for k, v in asdict(cfg).items() if k in ("ansatz", "n_circuits", "quanv")},
    }


__all__ = ["ARCHS", "ArchConfig", "BottleneckUNet", "UNet", "arch_summary", "bottleneck_name", "build_model",
           "count_parameters", "get_arch"]  # fmt: skip
