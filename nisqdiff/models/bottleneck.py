"""The lightweight U-Net with one quantum layer in its bottleneck (Chen et al. 2025, arXiv 2504.00034).

Widths (10, 20, 40), time embedding 40: at 28x28 a 3x3 stem and one ResBlock(10), down to 14x14, one
ResBlock(20), down to 7x7, the bottleneck ResBlock(40), the channel gate, then the decoder mirrors it
(upsample, concatenate the skip, ResBlock) to a 1x1 output convolution. The channel gate is where the
circuit sits, as in the paper's code: global average pool (N, 40) -> Linear(40, n) angles -> the n-qubit
ring circuit's <Z_q> (N, n) -> Linear(n, 40) -> the bottleneck's channels multiplied by (1 + that). The
paper's code uses Linear(128, 16) around 16 qubits on a wider network; this one keeps the whole model at a
about 90,000 parameters (a fifth of De Falco et al.'s; ``nisqdiff archs`` prints the count) and its circuit at 12 qubits by
default, which every device of the project and the exact noisy emulator handle.

The classical twin (``bottleneck``) is the same network with the circuit replaced by Linear(n, n) and
tanh (same range as <Z>): n^2 + n parameters (156 at n = 12) against the circuit's 2 n layers (72). The
control ``bottleneck-const`` has nothing there: the core's output is 0, so the gate is 1 + a trained
constant per channel (what ``qbottleneck`` becomes when its circuit's <Z> vanish).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .archs import get_arch
from .hybrid import CircuitModel, CircuitStage
from .layers import ResBlock, SinusoidalTimeEmbedding, Upsample

WIDTHS, TIME_DIM = (10, 20, 40), 40


class VectorCircuit(CircuitStage):
    """One circuit of ``ansatz`` on a vector per image: (N, n_qubits) RX angles -> <Z_q> (N, n_qubits).
    Weights (1, n_weights) uniform in [0, 2 pi) (the ring's angle is the weight itself)."""

    def __init__(self, ansatz: str):
        super().__init__()
        self._init_stage(ansatz, 1, 1, 2 * math.pi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_circuits(x.unsqueeze(0)).squeeze(0)


class ChannelGate(nn.Module):
    """(N, dim, H, W) -> the same, each channel scaled by (1 + g): g = Linear(n, dim)(core(Linear(dim, n)(mean over H, W))),
    ``core`` "circuit" (:class:`VectorCircuit` of ``ansatz``), "linear" (the classical twin: Linear(n, n), tanh)
    or "none" (no down projection and no core: g is Linear(n, dim)'s bias, a trained constant)."""

    def __init__(self, dim: int, n: int, core: str, ansatz: str | None = None):
        super().__init__()
        self.n = n
        self.down, self.up = (nn.Linear(dim, n) if core != "none" else None), nn.Linear(n, dim)
        self.core = {"circuit": lambda: VectorCircuit(ansatz), "linear": lambda: nn.Sequential(nn.Linear(n, n), nn.Tanh()),
                     "none": lambda: None}[core]()  # fmt: skip

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.core is None:
            z = h.new_zeros(h.shape[0], self.n)
        else:
            z = self.core(self.down(h.mean((2, 3)))).to(h.dtype)
        g = self.up(z)
        return h * (1 + g[:, :, None, None])


class BottleneckUNet(CircuitModel, nn.Module):
    """Noise-prediction U-Net of Chen et al.'s kind: x (N, C, 28, 28) in [-1, 1], t (N,) integer steps ->
    epsilon (N, C, 28, 28); C = 1, or 3 for an ``-rgb`` name. ``arch``: a bottleneck name of
    :func:`nisqdiff.models.archs.get_arch` (``qbottleneck``, ``bottleneck-q16``, ...)."""

    def __init__(self, arch: str = "qbottleneck"):
        super().__init__()
        self.config = cfg = get_arch(arch)
        if cfg.family != "bottleneck":
            raise ValueError(f"'{arch}' is not a bottleneck U-Net")
        c, (w0, w1, w2) = cfg.channels, WIDTHS
        self.image_shape = (c, 28, 28)
        self.init_conv = nn.Conv2d(c, w0, 3, padding=1)
        self.time_mlp = SinusoidalTimeEmbedding(w0, TIME_DIM)
        self.enc0, self.down0 = ResBlock(w0, w0, TIME_DIM), nn.Conv2d(w0, w1, 4, stride=2, padding=1)
        self.enc1, self.down1 = ResBlock(w1, w1, TIME_DIM), nn.Conv2d(w1, w2, 4, stride=2, padding=1)
        self.mid = ResBlock(w2, w2, TIME_DIM)
        self.gate = ChannelGate(w2, cfg.qubits, cfg.core, cfg.ansatz)
        self.up1, self.dec1 = Upsample(w2, w1, 14), ResBlock(2 * w1, w1, TIME_DIM)
        self.up0, self.dec0 = Upsample(w1, w0, 28), ResBlock(2 * w0, w0, TIME_DIM)
        self.final_conv = nn.Conv2d(w0, c, 1)

    @property
    def arch(self) -> str:
        return self.config.name

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_emb = self.time_mlp(t)
        s0 = self.enc0(self.init_conv(x), t_emb)
        s1 = self.enc1(self.down0(s0), t_emb)
        h = self.gate(self.mid(self.down1(s1), t_emb))
        h = self.dec1(torch.cat([self.up1(h), s1], 1), t_emb)
        h = self.dec0(torch.cat([self.up0(h), s0], 1), t_emb)
        return self.final_conv(h)
