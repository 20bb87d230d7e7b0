"""U-Net models: classical layers, hybrid blocks and the architecture registry."""

from .unet import ARCHS, ArchConfig, UNet, arch_summary, count_parameters, get_arch

__all__ = ["ARCHS", "ArchConfig", "UNet", "arch_summary", "count_parameters", "get_arch"]
