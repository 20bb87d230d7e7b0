"""Exact noisy <Z> of a compiled noisy circuit for any number of inputs: the emulator's ``exact`` method.

For a fixed circuit (weights bound) and noise model the inputs enter only through each qubit's prelude
(:class:`~nisqdiff.circuits.trajectories.Program`: the noisy single-qubit gates before the qubit's first
two-qubit gate, with one input-dependent ``rz(a * x + b)``). The state entering the entangling part is a
product of single-qubit states rho_k(theta_k) = A_k + B_k cos(theta_k) + C_k sin(theta_k), and everything
after is one fixed channel E. Hence, with the Pauli-basis components r_k = M_k (1, cos, sin) of rho_k,

    <Z_q>(x) = Tr(E^dag(Z_q) rho_1 (x) ... (x) rho_n) = sum_P o_P prod_k r_k[P_k]
             = sum_{i_1..i_n} T_q[i_1, ..., i_n] prod_k v_k[i_k],   v_k = (1, cos theta_k, sin theta_k),

a multilinear polynomial with 3^n coefficients per observable. :func:`compile_exact` computes o = E^dag(Z_q)
once per circuit by evolving Z_q backwards through the compiled channels in the Pauli basis (each channel's
Pauli transfer matrix, real), keeping only the qubits in the observable's backward light cone (E^dag of a
trace-preserving channel maps identity to identity), then contracts each qubit with its M_k. Evaluating N
inputs is one matrix product per observable split into the two halves of the qubits:
<Z_q> = V_lo(x)^T T_q V_hi(x), with V the tensor products of the v_k (3^(n/2) each). Each T_q
(3^(n/2) x 3^(n/2)) is of low numerical rank (noise and the light cones), so it is evaluated through its
SVD truncated where the bound on what the dropped terms can change, sigma_(r+1) |V_lo| |V_hi| (|v_k| =
sqrt 2), is at most :data:`TRUNCATION` (1e-7, below the float32 rounding of the sums): a seventh to a quarter of
the dense multiply-adds on trained 12-qubit HQConv circuits (docs/performance.md). Readout errors are the exact
affine map of each marginal. Nothing is sampled, and nothing is truncated beyond that bound: this is Aer's
density-matrix value up to floating-point rounding (float32 by default, within 2e-6 of Aer on trained
12-qubit circuits; float64 on request). A qubit with more than one input gate in its prelude is refused
(:class:`~nisqdiff.errors.DeviceError`); the trajectory method runs such circuits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..errors import DeviceError
from .trajectories import Channel, InputRZ, Program

MAX_QUBITS = 14  # two 4^14 float32 buffers are 2.1 GB
TRUNCATION = 1e-7  # the most a truncated singular value may change any <Z> (before readout), for every input
_PAULI = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


def _paulis(k: int) -> np.ndarray:
    """The 4^k Pauli strings on k qubits (4^k, 2^k, 2^k), first qubit most significant."""
    out = _PAULI
    for _ in range(k - 1):
        out = np.einsum("aij,bkl->abikjl", out, _PAULI).reshape(out.shape[0] * 4, out.shape[1] * 2, -1)
    return out


def transfer_matrix(ch: Channel) -> torch.Tensor:
    """The channel's Pauli transfer matrix R (4^k, 4^k) float64, R_ij = Tr(P_i E(P_j)) / 2^k, with the
    Pauli index of its first qubit most significant (the simulator's order). A Heisenberg step is
    o' = R^T o for an operator's Pauli components o."""
    kraus = ch.kraus.to(torch.complex128).numpy()
    p = _paulis(len(ch.qubits))
    image = np.einsum("kab,jbc,kdc->jad", kraus, p, kraus.conj())  # E(P_j)
    r = np.einsum("iba,jab->ij", p, image).real / p.shape[-1]
    return torch.from_numpy(np.ascontiguousarray(r))


def _density(ops: list, theta: float | None) -> np.ndarray:
    """A qubit's 2x2 state after its prelude from |0>, with ``theta`` as the angle of its input gate."""
    rho = np.array([[1, 0], [0, 0]], dtype=np.complex128)
    for op in ops:
        if isinstance(op, InputRZ):
            u = np.diag([np.exp(-0.5j * theta), np.exp(0.5j * theta)])
        else:
            k = op.kraus.to(torch.complex128).numpy()
            rho = np.einsum("kab,bc,kdc->ad", k, rho, k.conj())
            continue
        rho = u @ rho @ u.conj().T
    return rho


def _prelude_map(ops: list) -> tuple[np.ndarray, InputRZ | None]:
    """M (4, 3): the Pauli components (I, X, Y, Z) of the qubit's prelude state as linear functions of
    (1, cos theta, sin theta), and the qubit's input gate (None when it has none)."""
    inputs = [op for op in ops if isinstance(op, InputRZ)]
    if len(inputs) > 1:
        raise DeviceError(
            f"qubit {inputs[0].qubit} has {len(inputs)} input-dependent gates; the exact method handles one per "
            "qubit (use --method trajectories)"
        )
    at = {t: _density(ops, t) for t in (0.0, math.pi / 2, math.pi)}
    a = (at[0.0] + at[math.pi]) / 2
    b = (at[0.0] - at[math.pi]) / 2
    c = at[math.pi / 2] - a
    comps = [np.einsum("pij,ji->p", _PAULI, m).real for m in (a, b, c)]  # Tr(P rho)
    return np.stack(comps, 1), (inputs[0] if inputs else None)


@dataclass
class ExactProgram:
    """The exact noisy <Z> of every measured bit as polynomial coefficients (see the module doc).

    ``coeffs`` (n_clbits, 3^lo, 3^hi) (the pass's precision; None once truncated, :func:`_truncated`) over local
    qubits [0, lo) and [lo, n); ``inputs[k]`` the
    input gate of local qubit k (or None); ``readout`` (n_clbits, 2) [P(1|0), P(0|1)]; ``stats`` the
    compiled program's counts plus ``exact_seconds`` (the one-off cost of this compilation) and
    ``exact_rank`` (the rank-1 terms kept over all observables); ``factors`` the truncated SVDs that
    :meth:`expval` evaluates (None: it uses ``coeffs`` whole)."""

    num_qubits: int
    lo: int
    coeffs: torch.Tensor | None
    inputs: list
    readout: torch.Tensor
    stats: dict
    _flat: torch.Tensor | None = field(default=None, repr=False)  # coeffs as (3^lo, n_clbits * 3^hi), cached
    factors: tuple | None = field(default=None, repr=False)  # (L (3^lo, R), Rt (3^hi, R), owner (R,)): the truncated SVDs

    def _basis(self, x: torch.Tensor, qubits: range, dtype: torch.dtype) -> torch.Tensor:
        """(N, 3^len(qubits)) tensor products of v_k = (1, cos theta_k, sin theta_k) (angles in float64)."""
        out = torch.ones(x.shape[0], 1, dtype=dtype, device=x.device)
        for k in qubits:
            gate = self.inputs[k]
            if gate is None:
                v = torch.zeros(x.shape[0], 3, dtype=dtype, device=x.device)
                v[:, 0] = 1
            else:
                theta = gate.coeff * x[:, gate.column] + gate.offset
                v = torch.stack([torch.ones_like(theta), theta.cos(), theta.sin()], 1).to(dtype)
            out = (out[:, :, None] * v[:, None, :]).reshape(x.shape[0], -1)
        return out

    def expval(self, inputs: torch.Tensor, readout: bool = True, dtype: torch.dtype = torch.float32,
               chunk: int = 1024) -> torch.Tensor:  # fmt: skip
        """<Z> (N, n_clbits) float64 of every measured bit for ``inputs`` (N, n_inputs) radians, with
        the readout errors applied to each marginal (``readout=False``: before readout). ``dtype`` is
        the evaluation's precision: float32 (the default, faster) agrees with float64 to about 1e-6 on
        12-qubit HQConv circuits, and with Aer's density matrix to 1e-5 (tests/test_exact.py)."""
        m = self.readout.shape[0]
        x = inputs.to(device=(self.coeffs if self.factors is None else self.factors[0]).device, dtype=torch.float64)
        if self.factors is None and (self._flat is None or self._flat.dtype != dtype):
            self._flat = self.coeffs.permute(1, 0, 2).reshape(3**self.lo, -1).to(dtype)
        out = []
        for start in range(0, x.shape[0], chunk):
            rows = x[start : start + chunk]
            lo, hi = self._basis(rows, range(self.lo), dtype), self._basis(rows, range(self.lo, self.num_qubits), dtype)
            if self.factors is None:
                out.append(((lo @ self._flat).reshape(len(rows), m, -1) * hi[:, None, :]).sum(-1, dtype=torch.float64))
                continue
            left, right, owner = self.factors
            terms = ((lo @ left.to(dtype)) * (hi @ right.to(dtype))).double()  # (N, R): each kept rank-1 term
            out.append(torch.zeros(len(rows), m, dtype=torch.float64, device=x.device).index_add_(1, owner, terms))
        z = torch.cat(out)
        if readout:
            p10, p01 = self.readout.to(z.device, torch.float64).unbind(-1)
            z = (1 - p10 - p01) * z + (p01 - p10)
        return z


def _truncated(program: ExactProgram) -> ExactProgram:
    """``program`` evaluated through each T_q's truncated SVD (the module doc), without its whole coefficient
    tensors (a quarter of their memory or less: a study caches hundreds of programs); ``program`` itself where
    the kept terms would cost more than the dense product."""
    factors = _truncated_svd(program.coeffs, [g is not None for g in program.inputs])
    if factors is None:
        return program
    return replace(program, coeffs=None, factors=factors, stats={**program.stats, "exact_rank": len(factors[2])})


class _Operator:
    """A Pauli-basis operator over its support qubits (axes in ``support`` order, 4 or 3 values each),
    held in one of two preallocated flat buffers (dtype and device of ``like``): every step writes into
    the other buffer with ``out=`` (a fresh 4^12-entry tensor per step costs more in page faults than the
    arithmetic)."""

    def __init__(self, qubit: int, n: int, like: torch.Tensor):
        self.bufs = [like.new_empty(4**n) for _ in range(2)]
        self.cur, self.support, self.dims = 0, [qubit], [4]
        self.data.zero_()[3] = 1.0  # Z

    @property
    def data(self) -> torch.Tensor:
        return self.bufs[self.cur][: math.prod(self.dims)]

    def _target(self, dims: list[int]) -> torch.Tensor:
        self.cur, self.dims = 1 - self.cur, dims
        return self.data

    def grow(self, qubit: int) -> None:
        """Identity on ``qubit``, inserted as a new axis at its place in increasing qubit order."""
        at = sum(q < qubit for q in self.support)
        src = self.data.view(math.prod(self.dims[:at]), 1, -1)
        dst = self._target(self.dims[:at] + [4] + self.dims[at:]).view(src.shape[0], 4, src.shape[2])
        dst.zero_()[:, 0] = src[:, 0]
        self.support.insert(at, qubit)

    def move_next_to(self, a: int, b: int) -> None:
        """Permute axes so that qubit ``b``'s axis directly follows qubit ``a``'s (one copy)."""
        pa, pb = self.support.index(a), self.support.index(b)
        d, lo, hi = self.dims, min(pa, pb), max(pa, pb)
        x = self.data.view(math.prod(d[:lo]), d[lo], math.prod(d[lo + 1 : hi]), d[hi], math.prod(d[hi + 1 :]))
        if pa < pb:  # (L, a, M, b, R) -> (L, a, b, M, R)
            order, keep = [0, 1, 3, 2, 4], [*range(lo + 1), hi, *range(lo + 1, hi), *range(hi + 1, len(d))]
        else:  # (L, b, M, a, R) -> (L, M, a, b, R)
            order, keep = [0, 2, 3, 1, 4], [*range(lo), *range(lo + 1, hi + 1), lo, *range(hi + 1, len(d))]
        src = x.permute(order)
        self._target([d[i] for i in keep]).view(src.shape).copy_(src)
        self.support = [self.support[i] for i in keep]

    def restore_order(self) -> None:
        """Permute the axes back into increasing qubit order (one copy)."""
        order = sorted(range(len(self.support)), key=lambda i: self.support[i])
        src = self.data.view(self.dims).permute(order)
        self._target([self.dims[i] for i in order]).view(src.shape).copy_(src)
        self.support = [self.support[i] for i in order]

    def apply(self, m: torch.Tensor, qubits: tuple[int, ...]) -> None:
        """x' = m^T x on the (adjacent, in this order) axes of ``qubits``: m (d_in, d_out)."""
        at = self.support.index(qubits[0])
        k = len(qubits)
        left, right = math.prod(self.dims[:at]), math.prod(self.dims[at + k :])
        src = self.data.view(left, m.shape[0], right)
        dims = self.dims[:at] + ([m.shape[1]] if k == 1 else [4, 4]) + self.dims[at + k :]
        if right == 1:
            torch.matmul(src.view(left, -1), m, out=self._target(dims).view(left, -1))
        else:
            torch.matmul(m.T, src, out=self._target(dims).view(left, m.shape[1], right))


def _heisenberg(program: Program, qubit: int, transfer: list, maps: list[torch.Tensor]) -> torch.Tensor:
    """T_q: the coefficients (3,)*n over local qubits 0..n-1 of <Z_qubit> as a polynomial in the
    v_k = (1, cos, sin) (E^dag(Z_qubit) over its backward light cone, each qubit then mapped by M_k).
    ``transfer``: (R, R with its two qubits swapped) per channel of ``program.main``."""
    n = program.num_qubits
    op = _Operator(qubit, n, maps[0])
    first = {}  # qubit -> index of its first channel: there (going backwards) its axis is final
    for i, ch in enumerate(program.main):
        for q in ch.qubits:
            first.setdefault(q, i)
    done: set[int] = set()
    for i in reversed(range(len(program.main))):
        ch, (r, swapped) = program.main[i], transfer[i]
        if not any(q in op.support for q in ch.qubits):
            continue  # E^dag(I) = I
        _channel_step(op, ch.qubits, r, swapped)
        for q in ch.qubits:
            if first[q] == i:  # no earlier channel: map it to (1, cos, sin) now, the tensor shrinks
                op.apply(maps[q], (q,))
                done.add(q)
    for q in [q for q in op.support if q not in done]:  # Pauli components -> (1, cos, sin) coefficients
        op.apply(maps[q], (q,))
    t = op.data.view(op.dims)
    for k in range(n):  # qubits outside the light cone: the identity component only (r_I = 1)
        if k not in op.support:
            t = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], -1)
            op.support.append(k)
    return t.permute([op.support.index(k) for k in range(n)]).contiguous()


def _channel_step(op: _Operator, qubits: tuple[int, ...], r: torch.Tensor, swapped: torch.Tensor) -> None:
    """One Heisenberg step o -> R^T o of a channel on ``qubits`` touching the operator's support."""
    if len(qubits) == 1:
        op.apply(r, qubits)
        return
    a, b = qubits
    for q in qubits:
        if q not in op.support:
            op.grow(q)
    pa, pb = op.support.index(a), op.support.index(b)
    if abs(pa - pb) == 1:
        op.apply(r if pa < pb else swapped, (a, b) if pa < pb else (b, a))
        return
    op.move_next_to(a, b)  # axes apart (qubits not neighbours on the coupling path): move, apply, move back
    op.apply(r, (a, b))
    op.restore_order()


def compile_exact(program: Program, torch_device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  truncate: bool = True) -> ExactProgram:  # fmt: skip
    """The :class:`ExactProgram` of a compiled noisy program (the channels of
    :func:`~nisqdiff.circuits.trajectories.compile_program`, hence exactly ``aer-noisy``'s noise).
    Cost: one Heisenberg pass per measured bit over its light cone (at most 4^n_active x 16 x channels
    multiply-adds each; memory 2 x 4^n_active entries of ``dtype``). The transfer matrices and preludes
    are computed in float64; ``dtype`` is the pass's precision: float32 (the default, about twice as
    fast) changes <Z> by at most 5e-7 against float64 on a 12-qubit HQConv circuit. Raises :class:`~nisqdiff.errors.DeviceError` for a
    qubit with more than one input gate or more than :data:`MAX_QUBITS` active qubits. ``truncate`` (default):
    evaluate through the truncated SVDs and drop the whole tensors; False keeps them (the reference)."""
    t0 = time.perf_counter()
    n = program.num_qubits
    if n > MAX_QUBITS:
        raise DeviceError(f"the exact method holds 4^n-entry operators; {n} active qubits is more than its {MAX_QUBITS} "
                          "(use --method trajectories)")  # fmt: skip
    maps, gates = zip(*(_prelude_map(ops) for ops in program.prelude))
    transfer = []
    for ch in program.main:
        r = transfer_matrix(ch).to(torch_device, dtype)
        swapped = r.reshape(4, 4, 4, 4).permute(1, 0, 3, 2).reshape(16, 16) if len(ch.qubits) == 2 else r
        transfer.append((r, swapped))
    lo = n // 2
    m = [torch.from_numpy(mk).to(torch_device, dtype) for mk in maps]
    coeffs = torch.stack([_heisenberg(program, q, transfer, m).reshape(3**lo, 3 ** (n - lo)) for q in program.measured])
    exact = ExactProgram(n, lo, coeffs, list(gates), program.readout, {**program.stats, "method": "exact"})
    if truncate:
        exact = _truncated(exact)
    exact.stats["exact_seconds"] = time.perf_counter() - t0
    return exact


def _truncated_svd(coeffs: torch.Tensor, has_input: list[bool]) -> tuple | None:
    """Each observable's T_q (3^lo, 3^hi) as sum_r sigma_r u_r v_r^T, keeping the singular values above
    TRUNCATION / (|V_lo| |V_hi|) (so that no input's <Z> moves by more than TRUNCATION): (L (3^lo, R) = U S,
    Rt (3^hi, R) = V, owner (R,) the observable of each term), in coeffs' dtype; None where the kept terms
    would cost more than the dense product (2 R > n_clbits 3^hi multiply-adds per input row)."""
    norm = math.sqrt(2) ** sum(has_input)  # |V_lo| |V_hi|: |v_k| = sqrt(2) with an input gate, 1 without
    left, right, owner = [], [], []
    for q, t in enumerate(coeffs.double()):
        u, sv, vh = torch.linalg.svd(t, full_matrices=False)
        r = int((sv * norm > TRUNCATION).sum())
        left.append(u[:, :r] * sv[:r]), right.append(vh[:r].T), owner.append(torch.full((r,), q))
    owner = torch.cat(owner).to(coeffs.device)
    if 2 * len(owner) > coeffs.shape[0] * coeffs.shape[2]:
        return None
    return torch.cat(left, 1).to(coeffs.dtype), torch.cat(right, 1).to(coeffs.dtype), owner
