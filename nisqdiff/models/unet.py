"""The (hybrid) U-Net of De Falco et al. 2024 and its architectures (SPEC.md "U-Net", "Architectures")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import UsageError
from .hybrid import HybridResBlock, PatchCircuits
from .layers import Attention, LinearAttention, ResBlock, SinusoidalTimeEmbedding, Upsample

DIM, TIME_DIM, VERTEX = 10, 40, 40
# (dim_in, dim_out, spatial size) of encoder levels 0..3
LEVELS = ((10, 10, 28), (10, 20, 14), (20, 30, 7), (30, 40, 2))


@dataclass(frozen=True)
class ArchConfig:
    """What distinguishes an architecture: the vertex ansatz and circuit count (``None`` = classical,
    ``"full"`` = 13 circuits + 1 Basic per convolution) and QuanvResBlocks at encoder level 1."""

    name: str
    ansatz: str | None = None
    n_circuits: int | str | None = None
    quanv: bool = False
    paper_params: int | None = None  # De Falco et al. 2024, Tables 1-2, where printed


ARCHS = {
    a.name: a
    for a in (
        ArchConfig("classical", paper_params=483_321),
        ArchConfig("1hqconv", "hqconv", 1, paper_params=475_329),
        ArchConfig("7hqconv", "hqconv", 7, paper_params=440_985),
        ArchConfig("fullhqconv", "hqconv", "full", paper_params=429_993),
        ArchConfig("1fqconv", "fqconv", 1),
        ArchConfig("7fqconv", "fqconv", 7),
        ArchConfig("fullfqconv", "fqconv", "full"),
        ArchConfig("quanv", "hqconv", 1, quanv=True, paper_params=474_293),
    )
}


def get_arch(name: str) -> ArchConfig:
    """The :class:`ArchConfig` called ``name``; :class:`~nisqdiff.errors.UsageError` listing the valid
    names otherwise."""
    try:
        return ARCHS[name]
    except KeyError:
        raise UsageError(f"unknown architecture '{name}'; valid names: {', '.join(ARCHS)}") from None


def _vertex_block(cfg: ArchConfig) -> ResBlock:
    size = LEVELS[-1][2]
    if cfg.ansatz is None:
        return ResBlock(VERTEX, VERTEX, TIME_DIM)
    if cfg.n_circuits == "full":
        return HybridResBlock(VERTEX, TIME_DIM, cfg.ansatz, VERTEX // 3, size, basic_tail=True)
    return HybridResBlock(VERTEX, TIME_DIM, cfg.ansatz, int(cfg.n_circuits), size)


class UNet(nn.Module):
    """Noise-prediction U-Net: x (N, 1, 28, 28) in [-1, 1], t (N,) integer steps -> epsilon (N, 1, 28, 28).

    dim 10, multipliers (1, 2, 3, 4), vertex 2x2x40; ``arch`` selects the hybrid variant
    (:data:`ARCHS`). Parameter counts reproduce SPEC.md exactly.
    """

    def __init__(self, arch: str = "classical"):
        super().__init__()
        self.config = get_arch(arch)
        cfg = self.config
        self.init_conv = nn.Conv2d(1, DIM, 7, padding=3)
        self.time_mlp = SinusoidalTimeEmbedding(DIM, TIME_DIM)
        self.downs = nn.ModuleList()
        for level, (d_in, d_out, _) in enumerate(LEVELS):
            if cfg.quanv and level == 1:
                blocks = [HybridResBlock(d_in, TIME_DIM, cfg.ansatz, 1, LEVELS[level][2]) for _ in range(2)]
            else:
                blocks = [ResBlock(d_in, d_in, TIME_DIM) for _ in range(2)]
            if level < 2:
                down = nn.Conv2d(d_in, d_out, 4, stride=2, padding=1)
            elif level == 2:
                down = nn.Conv2d(d_in, d_out, 7, stride=2, padding=1)
            else:
                down = nn.Conv2d(d_in, d_out, 3, padding=1)
            self.downs.append(nn.ModuleList([*blocks, LinearAttention(d_in), down]))
        self.mid_block1 = _vertex_block(cfg)
        self.mid_attn = Attention(VERTEX)
        self.mid_block2 = _vertex_block(cfg)
        self.ups = nn.ModuleList()
        for level in reversed(range(len(LEVELS))):
            d_in, d_out, _ = LEVELS[level]
            up = Upsample(d_out, d_in, LEVELS[level - 1][2]) if level > 0 else nn.Conv2d(d_out, d_in, 3, padding=1)
            self.ups.append(
                nn.ModuleList(
                    [
                        ResBlock(d_out + d_in, d_out, TIME_DIM),
                        ResBlock(d_out + d_in, d_out, TIME_DIM),
                        LinearAttention(d_out),
                        up,
                    ]
                )
            )
        self.final_res_block = ResBlock(2 * DIM, DIM, TIME_DIM)
        self.final_conv = nn.Conv2d(DIM, 1, 1)

    @property
    def arch(self) -> str:
        return self.config.name

    def encoder_decoder_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of everything outside the vertex (what transfer learning copies)."""
        return ("init_conv.", "time_mlp.", "downs.", "ups.", "final_res_block.", "final_conv.")

    def circuits(self) -> list[PatchCircuits]:
        """Every circuit module of the model, in forward order; each is one circuit stage (one executor
        call per forward pass) and holds (C, n_weights) weights."""
        return [m for m in self.modules() if isinstance(m, PatchCircuits)]

    def circuit_inventory(self) -> list[dict]:
        """One entry per circuit of the model, in forward order: ``name`` ("mid_block1.hconv1.circuits[0]"),
        ``stage`` (index of its :class:`PatchCircuits`, one executor call per forward pass), ``ansatz``,
        ``weights`` (n_weights,) float64 detached, ``inputs_per_image`` (patches it runs per image and
        forward pass). What device plans, ``devices inspect`` and study circuit tables read."""
        out = []
        stage = 0
        for name, m in self.named_modules():
            if isinstance(m, PatchCircuits):
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

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = self.init_conv(x)
        r = x.clone()
        t_emb = self.time_mlp(t)
        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, t_emb)
            skips.append(x)
            x = attn(block2(x, t_emb))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t_emb)), t_emb)
        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat([x, skips.pop()], dim=1), t_emb)
            x = attn(block2(torch.cat([x, skips.pop()], dim=1), t_emb))
            x = up(x)
        return self.final_conv(self.final_res_block(torch.cat([x, r], dim=1), t_emb))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def arch_summary(name: str) -> dict:
    """Name, trainable parameters, circuit count (per image forward), qubits per circuit, paper count."""
    model = UNet(name)
    circuits = model.circuits()
    return {
        "arch": name,
        "params": count_parameters(model),
        "paper_params": ARCHS[name].paper_params,
        "circuits": sum(c.n_circuits for c in circuits),
        "qubits": sorted({4 * c.channels_per_circuit for c in circuits}),
        **{k: v for k, v in asdict(ARCHS[name]).items() if k in ("ansatz", "n_circuits", "quanv")},
    }
