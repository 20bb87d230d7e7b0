"""The (hybrid) U-Net of De Falco et al. 2024 and its architectures (SPEC.md "U-Net", "Architectures")."""

from __future__ import annotations

import torch
from torch import nn

from .archs import ArchConfig, get_arch
from .hybrid import CircuitModel, HybridResBlock
from .layers import Attention, LinearAttention, ResBlock, SinusoidalTimeEmbedding, Upsample

DIM, TIME_DIM, VERTEX = 10, 40, 40
# (dim_in, dim_out, spatial size) of encoder levels 0..3
LEVELS = ((10, 10, 28), (10, 20, 14), (20, 30, 7), (30, 40, 2))


def _vertex_block(cfg: ArchConfig) -> ResBlock:
    size = LEVELS[-1][2]
    if cfg.ansatz is None:
        return ResBlock(VERTEX, VERTEX, TIME_DIM)
    if cfg.n_circuits == "full":
        return HybridResBlock(VERTEX, TIME_DIM, cfg.ansatz, VERTEX // 3, size, basic_tail=True)
    return HybridResBlock(VERTEX, TIME_DIM, cfg.ansatz, int(cfg.n_circuits), size)


class UNet(CircuitModel, nn.Module):
    """Noise-prediction U-Net: x (N, 1, 28, 28) in [-1, 1], t (N,) integer steps -> epsilon (N, 1, 28, 28).

    dim 10, multipliers (1, 2, 3, 4), vertex 2x2x40; ``arch`` selects the hybrid variant
    (:data:`ARCHS`). Parameter counts reproduce SPEC.md exactly.
    """

    def __init__(self, arch: str = "classical"):
        super().__init__()
        self.config = get_arch(arch)
        cfg = self.config
        if cfg.family != "unet":
            raise ValueError(f"'{arch}' is a {cfg.family} U-Net; build it with nisqdiff.models.build_model")
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

    image_shape = (1, 28, 28)

    @property
    def arch(self) -> str:
        return self.config.name

    def encoder_decoder_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of everything outside the vertex (what transfer learning copies)."""
        return ("init_conv.", "time_mlp.", "downs.", "ups.", "final_res_block.", "final_conv.")

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # channels-last inside: oneDNN's small-channel convolutions run 2-4x faster on it (forward and
        # backward, bf16 and fp32), and the attention's (N, H*W, C) views of it need no copy
        # (a 1-channel input is both layouts at once, so the switch happens after init_conv)
        x = self.init_conv(x).contiguous(memory_format=torch.channels_last)
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
        return self.final_conv(self.final_res_block(torch.cat([x, r], dim=1), t_emb)).contiguous()
