"""Classical building blocks of the U-Net (SPEC.md "U-Net"; Ho et al. 2020 / lucidrains' denoising-diffusion-pytorch).

All tensors are NCHW. ``time_dim`` is the width of the time embedding (40 for dim 10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import fused

GROUPS = 10


class WSConv2d(nn.Conv2d):
    """Weight-standardised convolution: each output filter is standardised over (in, kh, kw), eps 1e-5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return F.conv2d(x, (w - mean) * torch.rsqrt(var + 1e-5), self.bias, self.stride, self.padding)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (N, C, H, W), with a scale ``g`` (1, C, 1, 1) and no bias, eps 1e-5.

    Computed by ``F.layer_norm`` on the channels-last view: a reduction over the strided channel axis
    (``var_mean(dim=1)``) is ~4x slower on CPU at (128, 10, 28, 28).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_layer_norm(x.movedim(1, -1), self.g).movedim(-1, 1)


def channel_layer_norm(x_last: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis of ``x_last`` (..., C) with the scale ``g`` (any shape of C elements)."""
    c = x_last.shape[-1]
    return F.layer_norm(x_last, (c,), g.reshape(c), None, 1e-5)


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that returns a channels-last input in channels-last but normalises it in NCHW:
    torch 2.13's channels-last CPU kernel is ~8x slower in bf16 and ~4x in fp32 (measured at
    (128, 10, 28, 28) and (256, 10, 28, 28))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)

    def silu(self, x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> torch.Tensor:
        """silu(self(x) * (1 + scale) + shift), scale and shift (N, C, 1, 1) or None; in one compiled pass
        where ``nisqdiff.models.fused.fits(x, grad=False)`` (sampling)."""
        if fused.fits(x, grad=False):
            return fused.group_norm_silu(x, self.num_groups, self.weight, self.bias, self.eps, scale, shift)
        return F.silu(self(x) if scale is None else self(x) * (1 + scale) + shift)


class SinusoidalTimeEmbedding(nn.Module):
    """t (N,) -> (N, time_dim): sinusoidal features of width ``dim`` then Linear, GELU, Linear."""

    def __init__(self, dim: int, time_dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        dtype = self.mlp[0].weight.dtype
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=dtype) / (half - 1))
        args = t.to(dtype)[:, None] * freqs[None, :]
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
        self.norm1 = GroupNorm(GROUPS, dim)
        if classical_convs:
            self.proj2 = WSConv2d(dim, dim, 3, padding=1)
        self.norm2 = GroupNorm(GROUPS, dim)
        self.res_conv = nn.Conv2d(dim_in, dim, 1) if dim_in != dim else nn.Identity()

    def conv1(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj1(x)

    def conv2(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj2(h)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mlp(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm1.silu(self.conv1(x), scale, shift)
        h = self.norm2.silu(self.conv2(h))
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

    chunk_positions = 3136  # positions per pass (4 images at 28x28, 16 at 14x14): their q and k stay in cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.fits(x) and self.to_qkv.out_channels == 3 * fused.HIDDEN:  # the compiled kernel
            conv, norm_out = self.to_out
            return fused.linear_attention(x, self.norm.g, self.to_qkv.weight.flatten(1), conv.weight.flatten(1), conv.bias,
                                          norm_out.g, self.heads, self.scale)  # fmt: skip
        per = max(1, self.chunk_positions // (x.shape[2] * x.shape[3]))
        if x.shape[0] <= per:
            return self._attend(x)
        return torch.cat([self._attend(part) for part in x.split(per)])

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        # The same function as lucidrains' (qkv conv, softmaxes, context = k v^T, out = context^T q, out
        # conv, LN), reassociated so that neither v nor the (N, 128, H, W) attention output is built:
        # with C channels < dim_head, context = (k x^T) W_v^T and the output conv folds into context.
        # That removes most of the memory traffic at 28x28 (about 3x faster there, bf16 fwd+bwd).
        n, c, h, w = x.shape
        p, heads = h * w, self.heads
        w_q, w_k, w_v = self.to_qkv.weight.view(3, -1, c).unbind(0)  # (heads * dim_head, C) each
        dim_head = w_q.shape[0] // heads
        xt = channel_layer_norm(x.flatten(2).transpose(1, 2), self.norm.g)  # (N, P, C)
        q = F.linear(xt, w_q).unflatten(-1, (heads, dim_head)).softmax(dim=-1)  # over features
        k = F.linear(xt, w_k).transpose(1, 2).softmax(dim=-1)  # (N, heads * dim_head, P), over positions
        kx = torch.matmul(k, xt).view(n, heads, dim_head, c)
        context = torch.matmul(kx, w_v.view(heads, dim_head, c).transpose(1, 2))  # (N, heads, d_k, d_v)
        conv, norm_out = self.to_out
        w_out = conv.weight.view(c, heads, dim_head).transpose(0, 1) * (self.scale / p)  # (heads, C, d_v)
        m = torch.matmul(context, w_out.transpose(1, 2)).reshape(n, heads * dim_head, c)
        out = channel_layer_norm(torch.matmul(q.reshape(n, p, heads * dim_head), m) + conv.bias, norm_out.g)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


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
