"""The U-Net's linear attention and its ResBlocks' normalisation chain in compiled kernels.

:func:`linear_attention` computes :class:`nisqdiff.models.layers.LinearAttention` in one pass per image
(``fused_attention.c``), writing no (N, H*W, 128) query or key tensor to memory, with a backward pass of its
own (:class:`_LinearAttention`): in training and sampling alike, in float32 (under bf16 autocast too: the
attention then runs in float32, more exactly than torch's bf16 path). :func:`group_norm_silu`
(``fused_norm.c``) computes a ResBlock's GroupNorm + time scale and shift + SiLU without the NCHW round trip
that torch's GroupNorm needs on channels-last input; it has no backward and serves sampling only. Those
were where the torch path's time went (docs/performance.md). Both are built on first use by
:mod:`nisqdiff.native`; where they cannot be, or ``NISQDIFF_NATIVE=0``, the U-Net runs in torch. They agree
with the torch path to float32 rounding, values and gradients (tests/test_fused.py).
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch

from .. import native as build

SOURCES = [Path(__file__).with_name(n) for n in ("fused.h", "fused_attention.c", "fused_norm.c")]
FLAGS = ("-ffp-contract=fast", "-fno-math-errno")  # never -ffast-math: see vexp in fused.h
HIDDEN, MAX_CHANNELS = 128, 64
_TORCH_ONLY = [False]


@lru_cache(maxsize=None)
def _library():
    lib = build.load("unet_kernels", SOURCES, FLAGS, "the U-Net runs in torch (slower, same results)")
    if lib is not None:
        lib.linear_attention_forward.restype = lib.linear_attention_backward.restype = ctypes.c_int
        lib.group_norm_silu.restype = ctypes.c_int
    return lib


@contextmanager
def torch_only():
    """Within it, the U-Net runs in torch even where the kernels are built (to compare the two)."""
    _TORCH_ONLY[0] = True
    try:
        yield
    finally:
        _TORCH_ONLY[0] = False


def fits(x: torch.Tensor, grad: bool = True) -> bool:
    """True where the kernels compute what the torch path would: a float32 or bfloat16 (N, C, H, W) CPU
    tensor of at most 64 channels, and the kernels built; with ``grad=False`` (the kernels without a
    backward) also no autograd and no autocast, in float32."""
    if _TORCH_ONLY[0] or x.device.type != "cpu" or x.dim() != 4 or x.shape[1] > MAX_CHANNELS:
        return False
    if not grad and (torch.is_grad_enabled() or torch.is_autocast_enabled("cpu") or x.dtype != torch.float32):
        return False
    return x.dtype in (torch.float32, torch.bfloat16) and _library() is not None


def _check(name: str, rc: int, shape) -> None:
    if rc:
        raise RuntimeError(f"{name} failed (code {rc}: a shape it does not support, or out of memory) on {tuple(shape)}")


def _ptrs(*tensors):
    return [None if t is None else build.ptr(t) for t in tensors]


class _LinearAttention(torch.autograd.Function):
    """y (N, C, H, W) channels-last from x and the attention's parameters as the kernel takes them (see
    :func:`linear_attention`); the backward is the kernel's own."""

    @staticmethod
    def forward(ctx, x, g_in, wq_t, wk_t, a, b_out, g_out, heads):
        n, c, h, w = x.shape
        out = torch.empty_like(x)
        stats = torch.empty(n, (2 + c) * HIDDEN) if any(ctx.needs_input_grad) else None  # for the backward
        params = (g_in, wq_t, wk_t, a, b_out, g_out)
        rc = _library().linear_attention_forward(*_ptrs(x), ctypes.c_long(n), h * w, c, heads, *_ptrs(*params), *_ptrs(out, stats),
                                                 torch.get_num_threads())  # fmt: skip
        _check("linear_attention_forward", rc, x.shape)
        if stats is not None:
            ctx.save_for_backward(x, stats, *params)
            ctx.heads = heads
        return out

    @staticmethod
    def backward(ctx, gy):
        x, stats, *params = ctx.saved_tensors
        n, c, h, w = x.shape
        gy = gy.float().contiguous(memory_format=torch.channels_last)
        gx = torch.empty_like(x)
        grads = [torch.zeros_like(t) for t in params]  # g_in, wq_t, wk_t, a, b_out, g_out
        rc = _library().linear_attention_backward(*_ptrs(x, gy), ctypes.c_long(n), h * w, c, ctx.heads, *_ptrs(*params, stats, gx, *grads),
                                                  torch.get_num_threads())  # fmt: skip
        _check("linear_attention_backward", rc, x.shape)
        return gx, *grads, None


def linear_attention(x: torch.Tensor, g_in: torch.Tensor, w_qkv: torch.Tensor, w_out: torch.Tensor,
                     b_out: torch.Tensor, g_out: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """x + LN(attention(LN(x))) for x (N, C, H, W), as :class:`~nisqdiff.models.layers.LinearAttention`
    computes it, differentiable in x and every parameter; returned (N, C, H, W) float32 in channels-last
    memory. ``g_in``, ``g_out``: the two LayerNorms' scales (C elements each); ``w_qkv`` (3 * 128, C): the
    q, k, v projections; ``w_out`` (C, 128) and ``b_out`` (C,): the output projection; ``scale``:
    dim_head ** -0.5. Call only where :func:`fits`; ValueError when the hidden width is not 128 in whole heads."""
    n, c, h, w = x.shape
    if w_qkv.shape != (3 * HIDDEN, c) or HIDDEN % heads:
        raise ValueError(f"the attention kernel needs a hidden width of {HIDDEN} in whole heads, got {tuple(w_qkv.shape)} and {heads} heads")
    with torch.autocast("cpu", enabled=False):  # the kernel runs in float32, so does what feeds it
        w_q, w_k, w_v = w_qkv.float().view(3, HIDDEN, c).unbind(0)
        dim_head = HIDDEN // heads
        # the value and output projections folded: a[h, c, c'] = sum_e W_v[h e, c] W_out[c', h e] * scale / p
        a = torch.einsum("hec,khe->hck", w_v.reshape(heads, dim_head, c), w_out.float().view(c, heads, dim_head)) * (scale / (h * w))
        params = [t.float().contiguous() for t in (g_in.reshape(c), w_q.t(), w_k.t(), a, b_out, g_out.reshape(c))]
    return _LinearAttention.apply(x.float().contiguous(memory_format=torch.channels_last), *params, heads)


def group_norm_silu(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                    scale: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> torch.Tensor:
    """silu(group_norm(x) * (1 + scale) + shift) for x (N, C, H, W), ``weight``, ``bias`` (C,), ``scale``
    and ``shift`` (N, C, 1, 1) or None (then neither is applied); returned in channels-last memory, not
    differentiable. Call only where ``fits(x, grad=False)``."""
    n, c, h, w = x.shape
    x = x.contiguous(memory_format=torch.channels_last)
    out = torch.empty_like(x)
    scale_shift = (None, None) if scale is None else (scale.reshape(n, c).contiguous(), shift.reshape(n, c).contiguous())
    rc = _library().group_norm_silu(*_ptrs(x), ctypes.c_long(n), h * w, c, groups, *_ptrs(weight, bias, *scale_shift),
                                    ctypes.c_float(eps), *_ptrs(out), torch.get_num_threads())  # fmt: skip
    _check("group_norm_silu", rc, x.shape)
    return out
