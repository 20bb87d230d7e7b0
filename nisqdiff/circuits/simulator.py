"""Batched statevector simulator in torch for the ansatzes of :mod:`nisqdiff.circuits.ansatz`.

Where the cost is, and how it is cut:

* The weights are shared by the whole batch, so every gate of a fusion group is multiplied into one
  small dense matrix per circuit once per forward pass (:func:`block_matrices`: all blocks of one
  size in one broadcast and a log-depth product tree), and only those matrices touch the batch. HQConv becomes, per layer, three 16x16
  channel blocks and one 8x8 block on qubits (0, 4, 8); FQConv becomes four 8x8 pixel blocks for the
  whole circuit; Basic one 16x16 block.
* The RX-encoded state is a product state. It is kept factorised: a factor is created only when a
  block needs it, so FQConv never builds more than four 8-amplitude factors and HQConv's first layer
  runs on three 16-amplitude factors before the B block joins them into 4096 amplitudes.
* A block is one strided permutation plus one batched complex matrix product over
  (circuits, batch x other qubits); the qubit order of a state is tracked, not restored.
* Differentiation: torch autograd through those few large ops (the per-gate work is all in the
  tiny matrices), CPU or CUDA alike.

Conventions follow PennyLane (wire 0 is the most significant bit): RX(a) = exp(-i a X / 2),
RY(a) = exp(-i a Y / 2), RZ(a) = exp(-i a Z / 2), CRX/CRZ apply them to the target when the control is |1>.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .ansatz import Gate, gates


@dataclass(frozen=True)
class Block:
    """A fused group of gates acting on ``qubits`` (most significant first in its matrix)."""

    qubits: tuple[int, ...]
    gates: tuple[Gate, ...]


@lru_cache(maxsize=None)
def fuse(ansatz: str) -> tuple[Block, ...]:
    """Fuse ``ansatz``'s gates into blocks, following each gate's ``group`` hint.

    A gate joins the latest block of its group only if no later block touches any of its qubits
    (then it commutes with everything in between); otherwise it opens a new block. The result is
    the same unitary as the gate list, applied as a few dense blocks. A block's qubits are listed
    ascending (its matrix's row order), so a block inside one chain group needs no reordering.
    """
    blocks: list[tuple[list[int], list[Gate], str]] = []
    frontier: dict[int, int] = {}  # qubit -> index of the last block acting on it
    for gate in gates(ansatz):
        target = next((i for i in range(len(blocks) - 1, -1, -1) if blocks[i][2] == gate.group), None)
        if target is None or any(frontier.get(q, -1) > target for q in gate.wires):
            blocks.append(([], [], gate.group))
            target = len(blocks) - 1
        qubits, members, _ = blocks[target]
        qubits += [q for q in gate.wires if q not in qubits]
        members.append(gate)
        for q in gate.wires:
            frontier[q] = target
    return tuple(Block(tuple(sorted(q)), tuple(g)) for q, g, _ in blocks)  # qubits ascending, as groups are


# Every gate is K + cos(angle / 2) A + sin(angle / 2) B with constant K, A, B (the CNOT's A = B = 0),
# in its wires' order, wire 0 the most significant: RX = c I - i s X, RY = c I - i s Y, RZ = c I - i s Z,
# CR* = |0><0| (x) I + |1><1| (x) R*.
_I2, _X = np.eye(2), np.array([[0, 1], [1, 0]])
_MINUS_I_PAULI = {"X": -1j * _X, "Y": np.array([[0, -1], [1, 0]]), "Z": np.diag([-1j, 1j])}
_P0, _P1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])


def _gate_terms(gate: Gate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, A, B) of ``gate``, each (2^g, 2^g) complex128."""
    if gate.name == "CNOT":
        return np.kron(_P0, _I2) + np.kron(_P1, _X), np.zeros((4, 4)), np.zeros((4, 4))
    b = _MINUS_I_PAULI[gate.name[-1]]
    if gate.name in ("RX", "RY", "RZ"):
        return np.zeros((2, 2)), _I2, b
    return np.kron(_P0, _I2), np.kron(_P1, _I2), np.kron(_P1, b)


@lru_cache(maxsize=None)
def _gate_tensors(gate: Gate, cdtype: torch.dtype, torch_device: str) -> tuple[torch.Tensor, ...]:
    """:func:`_gate_terms` as tensors, made once per gate, dtype and device (the chain asks every pass)."""
    return tuple(torch.from_numpy(t).to(device=torch_device, dtype=cdtype) for t in _gate_terms(gate))


def gate_matrix(gate: Gate, weights: torch.Tensor) -> torch.Tensor:
    """Matrix of ``gate`` for each circuit: weights (C, n_weights) real -> (C, 2^g, 2^g) complex,
    K + cos(angle / 2) A + sin(angle / 2) B with the constants of :func:`_gate_terms`."""
    cdtype = torch.complex128 if weights.dtype == torch.float64 else torch.complex64
    k, a, b = _gate_tensors(gate, cdtype, str(weights.device))
    if gate.weight is None:
        return k.expand(weights.shape[0], *k.shape)
    half = (gate.scale * 0.5 * weights[:, gate.weight])[:, None, None]
    return k + torch.cos(half) * a + torch.sin(half) * b


def apply(state: torch.Tensor, order: list[int], mat: torch.Tensor, qubits: tuple[int, ...]):
    """Apply ``mat`` (C or 1, d, d) on ``qubits`` of ``state`` (C, R, 2^k) whose bits are ``order``.

    Returns the new state and its bit order (the acted-on qubits last): one permutation copy and one
    batched matrix product. ``d = 2^len(qubits)``.
    """
    c, r, dim = state.shape
    k = len(order)
    pos = [order.index(q) for q in qubits]
    rest = [i for i in range(k) if i not in pos]
    if pos != list(range(k - len(pos), k)):
        perm = [0, 1] + [2 + i for i in rest] + [2 + i for i in pos]
        state = state.reshape(c, r, *([2] * k)).permute(perm)
    state = torch.matmul(state.reshape(c, -1, 2 ** len(qubits)), mat.transpose(-1, -2))
    return state.reshape(c, r, dim), [order[i] for i in rest] + list(qubits)


def embed(ops: list[tuple[torch.Tensor, tuple[int, ...]]], space: tuple[int, ...]) -> torch.Tensor:
    """One matrix on ``space`` (canonical order) for a sequence of ``(mat (C, d, d), qubits)`` applied
    in order: (C, 2^k, 2^k), differentiable in the matrices."""
    if len(ops) == 1 and tuple(ops[0][1]) == tuple(space):
        return ops[0][0]  # already on ``space`` in its order
    d, k = 2 ** len(space), len(space)
    cols = torch.eye(d, dtype=ops[0][0].dtype, device=ops[0][0].device).expand(ops[0][0].shape[0], d, d)
    order = list(space)
    for mat, qubits in ops:  # rows of ``cols`` are the images of the basis states
        cols, order = apply(cols, order, mat, qubits)
    back = [0, 1] + [2 + order.index(q) for q in space]
    return cols.reshape(-1, d, *([2] * k)).permute(back).reshape(-1, d, d).transpose(-1, -2)


def _embed_const(m: np.ndarray, wires: tuple[int, ...], qubits: tuple[int, ...]) -> np.ndarray:
    """The (2^g, 2^g) matrix ``m`` on ``wires`` as a (2^k, 2^k) matrix on ``qubits`` (first most significant)."""
    k, g = len(qubits), len(wires)
    idx = np.arange(2**k)
    bits = (idx[:, None] >> (k - 1 - np.arange(k))[None, :]) & 1  # (2^k, k)
    pos = [qubits.index(w) for w in wires]
    local = (bits[:, pos] << (g - 1 - np.arange(g))[None, :]).sum(1)  # index of each row on the gate's wires
    rest = np.delete(bits, pos, axis=1)
    same = (rest[:, None, :] == rest[None, :, :]).all(-1)
    return np.where(same, m[local[:, None], local[None, :]], 0)


@lru_cache(maxsize=None)
def _block_plan(ansatz: str, cdtype: torch.dtype, torch_device: str):
    """The fused blocks of ``ansatz`` grouped by size: per size d, constants K, A, B (n_blocks, L, d, d)
    of every gate embedded in its block (padded with identities to a power-of-two L), the weight index
    and angle scale of each gate (n_blocks, L), and where each block of :func:`fuse` lands."""
    classes: dict[int, list] = {}
    where = []
    for block in fuse(ansatz):
        d = 2 ** len(block.qubits)
        members = classes.setdefault(d, [])
        where.append((d, len(members)))
        members.append(block)
    plan = {}
    for d, blocks in classes.items():
        length = 1 << max(len(b.gates) - 1 for b in blocks).bit_length()
        terms = np.zeros((3, len(blocks), length, d, d), dtype=np.complex128)
        terms[0] = np.eye(d)  # identity padding
        index = np.zeros((len(blocks), length), dtype=np.int64)
        scale = np.zeros((len(blocks), length))
        for i, block in enumerate(blocks):
            for j, gate in enumerate(block.gates):
                for t, m in enumerate(_gate_terms(gate)):
                    terms[t, i, j] = _embed_const(m, gate.wires, block.qubits)
                if gate.weight is not None:
                    index[i, j], scale[i, j] = gate.weight, gate.scale
        real = torch.float64 if cdtype == torch.complex128 else torch.float32
        plan[d] = (torch.from_numpy(terms).to(device=torch_device, dtype=cdtype), torch.from_numpy(index).to(torch_device),
                   torch.from_numpy(scale).to(device=torch_device, dtype=real))  # fmt: skip
    return plan, where


def block_matrices(ansatz: str, weights: torch.Tensor) -> list[torch.Tensor]:
    """Dense matrix of every fused block: weights (C, n_weights) -> list of (C, 2^k, 2^k) complex,
    rows and columns in the block's qubit order (differentiable in the weights).

    All blocks of one size are built together, whatever the ansatz: each gate's embedded matrix is
    K + cos A + sin B (one broadcast), and a block's gates are multiplied in a log2(L)-deep tree of
    batched products, about 15 tensor operations per block size instead of several per gate.
    """
    cdtype = torch.complex128 if weights.dtype == torch.float64 else torch.complex64
    plan, where = _block_plan(ansatz, cdtype, str(weights.device))
    built = {}
    for d, (terms, index, scale) in plan.items():
        half = weights[:, index] * scale * 0.5  # (C, n_blocks, L)
        mats = terms[0] + torch.cos(half)[..., None, None] * terms[1] + torch.sin(half)[..., None, None] * terms[2]
        while mats.shape[2] > 1:  # later gates on the left
            mats = torch.matmul(mats[:, :, 1::2], mats[:, :, 0::2])
        built[d] = mats[:, :, 0]
    return [built[d][:, i] for d, i in where]


def encode(inputs: torch.Tensor) -> torch.Tensor:
    """RX(x)|0> for every angle: inputs (C, B, n) real -> (C, B, n, 2) complex [cos(x/2), -i sin(x/2)]."""
    half = inputs * 0.5
    zero = torch.zeros_like(half)
    return torch.stack([torch.complex(torch.cos(half), zero), torch.complex(zero, -torch.sin(half))], -1)


@lru_cache(maxsize=None)
def _z_signs(k: int, torch_device: str, dtype: torch.dtype) -> torch.Tensor:
    """(2^k, k) matrix of Z eigenvalues, bit j most significant first."""
    idx = torch.arange(2**k)
    bits = (idx[:, None] >> torch.arange(k - 1, -1, -1)[None, :]) & 1
    return (1 - 2 * bits).to(device=torch_device, dtype=dtype)


def _evolve(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
    """Run the fused blocks on the factorised RX-encoded state: list of (qubit order, (C, B, 2^k) amplitudes)."""
    c, b, n = inputs.shape
    single = encode(inputs)
    factors: dict[int, tuple[list[int], torch.Tensor]] = {q: ([q], single[:, :, q, :]) for q in range(n)}
    owner = {q: q for q in range(n)}
    for block, mat in zip(fuse(ansatz), block_matrices(ansatz, weights)):
        fids = list(dict.fromkeys(owner[q] for q in block.qubits))
        order, state = factors.pop(fids[0])
        for fid in fids[1:]:
            o2, s2 = factors.pop(fid)
            state = (state.unsqueeze(-1) * s2.unsqueeze(-2)).reshape(c, b, -1)
            order = order + o2
        state, order = apply(state, order, mat, block.qubits)
        factors[fids[0]] = (order, state)
        for q in order:
            owner[q] = fids[0]
    return list(factors.values())


def simulate_statevector(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """<Z_q> for a batch of inputs on each of C circuits of the same ansatz.

    Factorised statevector method; shapes and contract as :func:`nisqdiff.circuits.simulate`.
    """
    n = inputs.shape[-1]
    cols, qubits = [], []
    for order, state in _evolve(ansatz, inputs, weights):
        probs = state.real.square() + state.imag.square()
        cols.append(probs @ _z_signs(len(order), str(probs.device), probs.dtype))
        qubits += order
    out = torch.cat(cols, -1)
    inverse = torch.empty(n, dtype=torch.long)
    inverse[torch.tensor(qubits)] = torch.arange(n)
    return out[..., inverse.to(out.device)]


def statevector_probabilities(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Born probabilities of every computational basis state: (C, B, 2^n) real, index bits in qubit
    order (qubit 0 most significant, PennyLane's convention), from the factorised statevector."""
    c, b, n = inputs.shape
    probs, order = None, []
    for o, state in _evolve(ansatz, inputs, weights.to(inputs.dtype)):
        p = state.real.square() + state.imag.square()
        probs = p if probs is None else (probs.unsqueeze(-1) * p.unsqueeze(-2)).reshape(c, b, -1)
        order += o
    perm = [order.index(q) for q in range(n)]
    return probs.reshape(c, b, *([2] * n)).permute(0, 1, *(2 + i for i in perm)).reshape(c, b, 2**n)
