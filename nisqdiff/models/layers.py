"""Classical building blocks of the U-Net (SPEC.md "U-Net"; Ho et al. 2020 / lucidrains' denoising-diffusion-pytorch).

All tensors are NCHW. ``time_dim`` is the width of the time embedding (40 for dim 10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 10


class WSConv2d(nn.Conv2d):
    """Weight-standardised convolution: each output filter is standardised over (in, kh, kw), eps 1e-5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return F.conv2d(x, (w - mean) * torch.rsqrt(var + 1e-5), self.bias, self.stride, self.padding)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (N, C, H, W), with a scale and no bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + 1e-5) * self.g


class SinusoidalTimeEmbedding(nn.Module):
    """t (N,) -> (N, time_dim): sinusoidal features of width ``dim`` then Linear, GELU, Linear."""

    def __init__(self, dim: int, time_dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / (half - 1))
        args = t.float()[:, None] * freqs[None, :]
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=-1))


class ResBlock(nn.Module):
    """(N, dim_in, H, W), t_emb (N, time_dim) -> (N, dim, H, W).

    conv1, GN, ``h * (1 + scale) + shift``, SiLU, conv2, GN, SiLU, plus the residual (1x1 conv when
    widths differ). :meth:`conv1` and :meth:`conv2` are the two convolutions the hybrid blocks replace;
    ``classical_convs=False`` leaves them to the subclass (no WSConv2d ``proj1``/``proj2`` is built).
    """

    def __init__(self, dim_in: int, dim: int, time_dim: int, classical_convs: bool = True):
        super().__init__()
        self.dim_in, self.dim = dim_in, dim
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * dim))
        # this order fixes the order of parameters(), which optimiser states of saved checkpoints rely on
        if classical_convs:
            self.proj1 = WSConv2d(dim_in, dim, 3, padding=1)
        self.norm1 = nn.GroupNorm(GROUPS, dim)
        if classical_convs:
            self.proj2 = WSConv2d(dim, dim, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, dim)
        self.res_conv = nn.Conv2d(dim_in, dim, 1) if dim_in != dim else nn.Identity()

    def conv1(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj1(x)

    def conv2(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj2(h)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mlp(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm1(self.conv1(x)) * (1 + scale) + shift)
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.res_conv(x)


class LinearAttention(nn.Module):
    """Residual linear attention (Shen et al. 2021 as in lucidrains): pre-LN, 4 heads x 32, q softmax
    over features, k softmax over positions, output 1x1 conv + LN. (N, dim, H, W) -> same."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.norm = ChannelLayerNorm(dim)
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).reshape(n, 3, self.heads, -1, h * w).unbind(1)
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (h * w)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(n, -1, h, w)
        return x + self.to_out(out)


class Attention(nn.Module):
    """Residual full attention with L2-normalised q, k (similarity x10), pre-LN, 4 heads x 32."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32, scale: float = 10.0):
        super().__init__()
        self.heads, self.scale = heads, scale
        hidden = heads * dim_head
        self.norm = ChannelLayerNorm(dim)
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).reshape(n, 3, self.heads, -1, h * w).unbind(1)
        q, k = F.normalize(q, dim=-2), F.normalize(k, dim=-2)
        attn = (torch.einsum("bhdi,bhdj->bhij", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhij,bhdj->bhdi", attn, v).reshape(n, -1, h, w)
        return x + self.to_out(out)


class Upsample(nn.Module):
    """Nearest-neighbour resize with half-pixel centres to ``size``, then Conv3x3 (dim_in -> dim_out)."""

    def __init__(self, dim_in: int, dim_out: int, size: int):
        super().__init__()
        self.size = size
        self.conv = nn.Conv2d(dim_in, dim_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=(self.size, self.size), mode="nearest-exact"))
