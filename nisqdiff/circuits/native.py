"""The chain simulator compiled (``chain_forward.c``, ``chain_backward.c``): built on first use.

:func:`chain_expval` evaluates <Z_q> of an HQConv-shaped chain (three sites of four qubits, the last
block deferred with one open qubit per site) for many inputs, 8 (AVX-512: 16) inputs per SIMD vector, over torch's
thread count (OpenMP): the per-input products of 4x4 and 16x16 matrices that torch runs as batched GEMM
calls (docs/performance.md) run in registers instead. It is differentiable through the kernel's own
backward pass (:class:`_ChainExpval`); :func:`chain_probabilities` gives the same circuits' Born
probabilities (for the ``shots`` device). The kernel RX-encodes the input angles itself (and
returns their gradient). The C source ships with the package and is built on first use
by :mod:`nisqdiff.native`. Where no compiler works, or ``NISQDIFF_NATIVE=0``, :func:`available` is False
and the chain runs in torch (one warning says why). Results agree with the torch path to float32 rounding
(tests/test_chain_native.py).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from .. import native as build
from ..native import ptr as _ptr

SOURCES = [Path(__file__).with_name(n) for n in ("chain_kernel.h", "chain_readout.h", "chain_forward.c", "chain_backward.c")]
FLAGS = ("-ffp-contract=fast",)


def library_path() -> Path:
    """Where the kernel built from these sources with these flags for this CPU lives (or will)."""
    return build.library_path("chain_kernel", SOURCES, FLAGS)


@lru_cache(maxsize=None)
def _library():
    """The loaded kernel, or None (with one warning) where it cannot be built."""
    lib = build.load("chain_kernel", SOURCES, FLAGS, "the chain simulator runs in torch (slower, same results)")
    if lib is not None:
        lib.chain_expval.restype = lib.chain_backward.restype = lib.chain_probs.restype = ctypes.c_int
    return lib


def available() -> bool:
    """True if the compiled kernel is built (or can be) and loaded."""
    return _library() is not None


def _interleaved(t: torch.Tensor) -> torch.Tensor:
    """A complex tensor as the kernel reads it: (re, im) as a last axis, float32, contiguous."""
    return torch.view_as_real(t.resolve_conj()).contiguous()


class _ChainExpval(torch.autograd.Function):
    """<Z> (C, B, 12) of C circuits from the input angles (C, B, 12) float32 (RX-encoded in the kernel), the op
    matrices (C, n_ops, 16, 16) and the deferred block's observables (C, 3, 8, 8), complex64; the backward
    is the kernel's own, down to the angles."""

    @staticmethod
    def forward(ctx, x, mats, obs, table, pats, masks):
        lib = _library()
        c, b = x.shape[:2]
        x, mats_f, obs_f = x.contiguous(), _interleaved(mats), _interleaved(obs)
        out = torch.empty(c, b, 12, dtype=torch.float32)
        lib.chain_expval(_ptr(x), ctypes.c_long(b), ctypes.c_int(c), _ptr(table, ctypes.c_int), ctypes.c_int(len(table)),
                         _ptr(pats, ctypes.c_int), _ptr(mats_f), _ptr(masks, ctypes.c_int), _ptr(obs_f), _ptr(out),
                         ctypes.c_int(torch.get_num_threads()))  # fmt: skip
        ctx.save_for_backward(x, mats_f, obs_f, table, pats, masks)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, mats_f, obs_f, table, pats, masks = ctx.saved_tensors
        c, b, n_ops = x.shape[0], x.shape[1], len(table)
        gz = grad.contiguous().float()
        gx = torch.empty_like(x)
        g_mats = torch.empty(c, n_ops, 16, 16, 2)
        g_obs = torch.empty(c, 3, 8, 8, 2)
        _library().chain_backward(_ptr(x), ctypes.c_long(b), ctypes.c_int(c), _ptr(table, ctypes.c_int), ctypes.c_int(n_ops),
                                  _ptr(pats, ctypes.c_int), _ptr(mats_f), _ptr(masks, ctypes.c_int), _ptr(obs_f), _ptr(gz), _ptr(gx), _ptr(g_mats),
                                  _ptr(g_obs), ctypes.c_int(torch.get_num_threads()))  # fmt: skip
        return gx, torch.view_as_complex(g_mats), torch.view_as_complex(g_obs), None, None, None


def pack_patterns(patterns: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """The ops' sparsity patterns as the kernel reads them: (each op's offset, int32 buffer holding per op 17
    row starts, then the columns of its nonzero entries, row by row). ``patterns`` (n_ops, 16, 16) bool:
    where each op's matrix can be nonzero for any weights (:func:`nisqdiff.circuits.chain.op_patterns`)."""
    parts, offsets, at = [], [], 0
    for p in patterns:
        starts = torch.cat([torch.zeros(1, dtype=torch.long), p.sum(1).cumsum(0)])
        parts += [starts, p.nonzero()[:, 1]]  # nonzero() is row-major: columns row by row
        offsets.append(at)
        at += len(starts) + int(p.sum())
    return offsets, torch.cat(parts).to(torch.int32)


def _op_table(ops: list[tuple], offsets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The ops as the kernel reads them: (n_ops, 6) int32 rows (kind, s, t, mask, matrix index, pattern offset),
    and the matrices (C, n_ops, 16, 16) complex64 (every circuit's own)."""
    table = torch.tensor([[0 if t is None else 1, s, t or 0, mask or 0, i, offsets[i]] for i, (s, t, mask, _) in enumerate(ops)],
                         dtype=torch.int32)  # fmt: skip
    return table, torch.stack([m for *_, m in ops], 1)


def chain_probabilities(inputs: torch.Tensor, ops: list[tuple], patterns: tuple, open_masks: list[int],
                        final: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Born probabilities (C, B, 4096) float32 of C circuits (one op list, their own matrices) for B inputs
    each, basis index p0 * 256 + p1 * 16 + p2 (each site's qubits in group order); not differentiable.
    ``inputs``, ``ops``, ``patterns``, ``open_masks`` as for :func:`chain_expval`; ``final`` (C, 8, 8)
    complex64: the deferred block on the open qubits in site order."""
    (table, mats), pats = _op_table(ops, patterns[0]), patterns[1]
    x, mats_f, f = inputs.detach().float().contiguous(), _interleaved(mats.detach()), _interleaved(final.detach())
    masks = torch.tensor(open_masks, dtype=torch.int32)
    c, b = x.shape[:2]
    out = torch.empty(c, b, 4096, dtype=torch.float32)
    _library().chain_probs(_ptr(x), ctypes.c_long(b), ctypes.c_int(c), _ptr(table, ctypes.c_int), ctypes.c_int(len(table)),
                           _ptr(pats, ctypes.c_int), _ptr(mats_f), _ptr(masks, ctypes.c_int), _ptr(f), _ptr(out),
                           ctypes.c_int(torch.get_num_threads()))  # fmt: skip
    return out


def chain_expval(inputs: torch.Tensor, ops: list[tuple], patterns: tuple, open_masks: list[int],
                 obs: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """<Z_q> (C, B, 12), float32, of C circuits with one op list (each its own matrices) for B inputs each, in
    one kernel call; differentiable in the inputs, the op matrices and ``obs`` (the kernel's own backward pass).

    ``inputs`` (C, B, 12) float32: the angles, RX-encoded in the kernel, qubit 4 s + j on site s (three sites
    of four qubits in order, as HQConv's groups); ``ops``: the circuits' operations as
    :func:`nisqdiff.circuits.chain.chain_program` gives them (matrices (C, 16, 16) complex64);
    ``patterns``: :func:`pack_patterns` of where each op's matrix can be nonzero for any weights (the
    kernel multiplies, and differentiates, only those entries); ``open_masks``: for each site the bit of its
    qubit in the deferred block; ``obs`` (C, 3, 8, 8) complex64: that block's observables, ``obs[c, k, j, i]`` = (F^dagger Z_k F)[j, i] over the open qubits in site
    order. The caller checks that the shape fits (:func:`nisqdiff.circuits.chain._native_fits`).
    """
    (table, mats), pats = _op_table(ops, patterns[0]), patterns[1]
    masks = torch.tensor(open_masks, dtype=torch.int32)
    return _ChainExpval.apply(inputs, mats, obs, table, pats, masks)
