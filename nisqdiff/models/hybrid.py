"""Hybrid blocks: ResBlocks whose convolutions are (partly) variational circuits (SPEC.md "Hybrid blocks").

Every circuit call goes through the block's ``executor``, a
:class:`~nisqdiff.circuits.executor.CircuitExecutor` (``run(ansatz, inputs (C, B, n_qubits), weights
(C, n_weights)).evs -> <Z> (C, B, n_qubits)``), so a noisy simulator or a quantum computer can stand
behind the model without touching it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..circuits import ExactSimulator, get_spec
from .layers import ResBlock, WSConv2d


class CircuitStage(nn.Module):
    """A module that runs C circuits of one ansatz in one executor call per forward pass: ``ansatz``,
    ``n_circuits``, ``weights`` (C, n_weights), ``patches_per_image`` (inputs per image and circuit,
    what device runs are planned from) and ``executor`` (the exact simulator until
    :meth:`CircuitModel.set_executor`)."""

    ansatz: str
    n_circuits: int
    patches_per_image: int

    def _init_stage(self, ansatz: str, n_circuits: int, patches_per_image: int, weight_scale: float) -> None:
        spec = get_spec(ansatz)
        self.ansatz, self.n_circuits, self.patches_per_image = ansatz, n_circuits, patches_per_image
        self.weights = nn.Parameter(torch.rand(n_circuits, spec.n_weights) * weight_scale)
        self.executor = ExactSimulator()

    def run_circuits(self, inputs: torch.Tensor) -> torch.Tensor:
        """<Z> (C, B, n_qubits) of inputs (C, B, n_qubits), in fp32 whatever the autocast."""
        with torch.autocast(inputs.device.type, enabled=False):  # circuits always simulate in fp32 / complex64
            return self.executor.run(self.ansatz, inputs.float(), self.weights.float()).evs


class CircuitModel:
    """What a model with circuit stages offers the device layer (mixed into the U-Nets)."""

    def circuits(self) -> list[CircuitStage]:
        """Every circuit module of the model, in forward order; each is one circuit stage (one executor
        call per forward pass) and holds (C, n_weights) weights."""
        return [m for m in self.modules() if isinstance(m, CircuitStage)]

    def circuit_inventory(self) -> list[dict]:
        """One entry per circuit of the model, in forward order: ``name`` ("mid_block1.hconv1.circuits[0]"),
        ``stage`` (index of its :class:`CircuitStage`, one executor call per forward pass), ``ansatz``,
        ``weights`` (n_weights,) float64 detached, ``inputs_per_image`` (patches it runs per image and
        forward pass). What device plans, ``devices inspect`` and study circuit tables read."""
        out = []
        stage = 0
        for name, m in self.named_modules():
            if isinstance(m, CircuitStage):
                for c in range(m.n_circuits):
                    out.append({"name": f"{name}[{c}]", "stage": stage, "ansatz": m.ansatz,
                                "weights": m.weights[c].detach().cpu().double(), "inputs_per_image": m.patches_per_image})  # fmt: skip
                stage += 1
        return out

    def set_executor(self, executor) -> None:
        """Route every circuit call of the model through ``executor`` (a
        :class:`~nisqdiff.circuits.executor.CircuitExecutor`)."""
        for m in self.circuits():
            m.executor = executor


class PatchCircuits(CircuitStage):
    """C circuits of one ansatz applied to every non-overlapping 2x2 patch of their channels.

    Circuit c reads channels ``c*k .. c*k+k-1`` (k = n_qubits // 4) of (N, C*k, H, W), H and W even:
    qubit ``4*ch + p`` holds channel ch, patch pixel p (row-major), RX-encoded with the raw value.
    Output <Z_q> goes back to the same channel and pixel: (N, C*k, H, W) in [-1, 1]. At the 2x2
    vertex there is one patch; at 14x14 (quanvolution) one circuit is shared by all 49 patches.
    Weights (C, n_weights) start uniform in [0, 1) (angles 2*pi*theta); the Basic ansatz, whose angle
    is theta itself, starts uniform in [0, 2*pi) so its angles cover a full turn too. ``size`` is the
    spatial size the module sees (2 at the vertex, 14 for quanvolution): ``patches_per_image`` =
    (size / 2)^2 inputs per image and circuit, what a device run is planned from.
    """

    def __init__(self, ansatz: str, n_circuits: int, size: int):
        super().__init__()
        self._init_stage(ansatz, n_circuits, (size // 2) ** 2, 2 * math.pi if ansatz == "basic" else 1.0)
        self.channels_per_circuit = get_spec(ansatz).n_qubits // 4

    @property
    def in_channels(self) -> int:
        return self.n_circuits * self.channels_per_circuit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c, k = self.n_circuits, self.channels_per_circuit
        patches = x.reshape(n, c, k, h // 2, 2, w // 2, 2).permute(1, 0, 3, 5, 2, 4, 6)
        out = self.run_circuits(patches.reshape(c, -1, 4 * k))
        out = out.reshape(c, n, h // 2, w // 2, k, 2, 2).permute(1, 0, 4, 2, 5, 3, 6)
        return out.reshape(n, c * k, h, w)


class HybridConv(nn.Module):
    """Split convolution: the first channels through circuits, the rest through a WSConv3x3.

    (N, dim, H, W) -> (N, dim, H, W), quantum channels first. ``basic_tail`` adds one Basic circuit
    for the channel left after the 3-channel circuits (the full vertex: 13 circuits + 1 Basic).
    """

    def __init__(self, dim: int, ansatz: str, n_circuits: int, size: int, basic_tail: bool = False):
        super().__init__()
        self.circuits = PatchCircuits(ansatz, n_circuits, size)
        self.basic = PatchCircuits("basic", 1, size) if basic_tail else None
        self.n_quantum = self.circuits.in_channels + (1 if basic_tail else 0)
        rest = dim - self.n_quantum
        if rest < 0:
            raise ValueError(f"{n_circuits} {ansatz} circuits need {self.n_quantum} channels, block has {dim}")
        self.conv = WSConv2d(rest, rest, 3, padding=1) if rest else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.circuits.in_channels
        parts = [self.circuits(x[:, :q])]
        if self.basic is not None:
            parts.append(self.basic(x[:, q : q + 1]))
        if self.conv is not None:
            parts.append(self.conv(x[:, self.n_quantum :]))
        # keep a channels-last input's layout (the U-Net's): the circuits' output is NCHW, and the
        # layers after this block would otherwise run in NCHW, 2-4x slower in their convolutions
        layout = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) else None
        out = torch.cat(parts, dim=1)
        return out if layout is None else out.contiguous(memory_format=layout)


class HybridResBlock(ResBlock):
    """A ResBlock(dim) at spatial ``size`` whose two convolutions are :class:`HybridConv` (QResBlock,
    FullQResBlock, QuanvResBlock)."""

    def __init__(self, dim: int, time_dim: int, ansatz: str, n_circuits: int, size: int, basic_tail: bool = False):
        super().__init__(dim, dim, time_dim, classical_convs=False)
        self.hconv1 = HybridConv(dim, ansatz, n_circuits, size, basic_tail)
        self.hconv2 = HybridConv(dim, ansatz, n_circuits, size, basic_tail)

    def conv1(self, x: torch.Tensor) -> torch.Tensor:
        return self.hconv1(x)

    def conv2(self, h: torch.Tensor) -> torch.Tensor:
        return self.hconv2(h)
