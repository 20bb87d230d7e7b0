"""Batched quantum-trajectory simulation of transpiled, noisy circuits in torch (the emulator's engine).

A transpiled circuit and its noise (the Aer ``QuantumError`` of every gate, the readout assignment
probabilities of every measured qubit) are compiled once by :func:`compile_program`:

* Only the active physical qubits are simulated (12 for a 12-qubit ansatz on a 127-qubit device).
* Every gate becomes a channel: its unitary followed by its error, composed as superoperators
  (``qiskit.quantum_info.SuperOp``), exactly as Aer applies a gate error after its gate.
* Single-qubit channels between two-qubit gates are folded into the next two-qubit channel of their
  qubit, and consecutive two-qubit channels on the same pair are merged: a 12-qubit HQConv circuit with
  160 ECR gates and 400 single-qubit gates becomes about 120 two-qubit channels. Folding composes
  channels exactly, so nothing is approximated.
* Each channel is stored as Kraus operators (Qiskit's canonical decomposition of its Choi matrix).
* Gates that depend on an input (the RX encoding, transpiled into ``rz(a * x_i + b)``) stay separate,
  with their affine coefficients; they act on the product state before any two-qubit gate.

:func:`run_program` then evolves N inputs x T trajectories as one batch of pure states on the
statevector machinery of :mod:`nisqdiff.circuits.simulator` (one strided permutation and batched
matrix products per channel). At each channel a trajectory picks Kraus operator K_i with its exact
state-dependent probability p_i = <psi|K_i^dag K_i|psi> (from the channel qubits' reduced density
matrix) and continues with K_i|psi>/sqrt(p_i): the standard unravelling, whose average over trajectories
is the density matrix Aer evolves (unbiased; no Pauli twirling, relaxation stays amplitude damping).
Measurement: shots are drawn from each trajectory's Born probabilities and every bit is flipped with the
calibrated readout probabilities, as Aer's ``ReadoutError`` does; without shots the exact readout-
corrupted marginals are averaged over trajectories.

Qiskit matrices are little-endian (qarg 0 least significant); the simulator's are big-endian (first
qubit most significant), so a channel on qubits (a, b) is built with qiskit qargs [b, a].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DeviceError
from .simulator import _z_signs


@dataclass
class Channel:
    """Kraus operators (k, d, d) complex on ``qubits`` (local indices, first most significant), as
    ``kraus`` (complex64) and ``probe`` (d^2, k): p_k = rho.flatten() @ probe = tr(K_k^dag K_k rho).
    ``swapped`` is the same channel written with its two qubits in the other order."""

    qubits: tuple[int, ...]
    kraus: torch.Tensor
    probe: torch.Tensor
    swapped: Channel | None = None


@dataclass
class InputRZ:
    """rz(coeff * x[column] + offset) on local qubit ``qubit`` (an input-dependent gate)."""

    qubit: int
    column: int
    coeff: float
    offset: float


@dataclass
class Program:
    """A compiled noisy circuit: per-qubit preludes (before the qubit's first two-qubit gate), the main
    list of channels, and the measured local qubit and readout probabilities of every classical bit."""

    num_qubits: int
    prelude: list[list]
    main: list[Channel]
    measured: list[int]
    readout: torch.Tensor  # (n_clbits, 2): P(1|0), P(0|1)
    stats: dict = field(default_factory=dict)

    def to(self, torch_device: str | torch.device) -> Program:
        """The program with its operators on ``torch_device`` (itself when they are there already)."""
        if self.main and self.main[0].kraus.device == torch.device(torch_device):
            return self

        def move(ch: Channel | None) -> Channel | None:
            return ch and Channel(ch.qubits, ch.kraus.to(torch_device), ch.probe.to(torch_device), move(ch.swapped))

        prelude = [[op if isinstance(op, InputRZ) else move(op) for op in ops] for ops in self.prelude]
        return Program(self.num_qubits, prelude, [move(c) for c in self.main], self.measured,
                       self.readout, self.stats)  # fmt: skip


def _channel(superop, qubits: tuple[int, ...]) -> Channel:
    from qiskit.quantum_info import Kraus

    kraus = torch.tensor(np.stack(Kraus(superop).data), dtype=torch.complex128)
    d = kraus.shape[-1]
    effects = kraus.conj().transpose(-1, -2) @ kraus
    probe = effects.transpose(-1, -2).reshape(-1, d * d).T.to(torch.complex64)
    ch = Channel(qubits, kraus.to(torch.complex64), probe)
    if len(qubits) == 2:
        perm = [0, 2, 1, 3]  # basis index ab -> ba
        ch.swapped = Channel(qubits[::-1], ch.kraus[:, perm][:, :, perm], None)
        ch.swapped.probe = effects[:, perm][:, :, perm].transpose(-1, -2).reshape(-1, d * d).T.to(torch.complex64)
    return ch


def _affine(expr) -> tuple[int, float, float]:
    """(input column, a, b) of a parameter expression a * x[i] + b (raises if it is not affine in one input)."""
    (param,) = expr.parameters
    at = [float(expr.bind({param: v}).numeric()) for v in (0.0, 1.0, 2.0)]
    a, b = at[1] - at[0], at[0]
    if abs(at[2] - (2 * a + b)) > 1e-9:
        raise DeviceError(f"gate angle {expr} is not affine in its input; the emulator cannot compile it")
    return param.index, a, b


def compile_program(circuit, errors: dict, readout: dict) -> Program:
    """Compile a transpiled, measured circuit for :func:`run_program`.

    ``errors``: {(gate name, physical qubits): Aer ``QuantumError``} applied after that gate (the
    entries of ``basic_device_gate_errors``); ``readout``: {physical qubit: (P(1|0), P(0|1))}. Input
    parameters must be ``x[i]`` of :func:`~nisqdiff.circuits.qiskit_build.qiskit_circuit`. Raises
    ``DeviceError`` for instructions the emulator does not model (resets, mid-circuit measurements).
    """
    from qiskit.circuit import ParameterExpression
    from qiskit.quantum_info import Operator, SuperOp

    phys_of = {q: circuit.find_bit(q).index for q in circuit.qubits}
    active = sorted({phys_of[q] for inst in circuit.data if inst.operation.name != "barrier" for q in inst.qubits})
    pairs = {tuple(sorted(phys_of[q] for q in inst.qubits)) for inst in circuit.data if len(inst.qubits) == 2}
    active = path_order(active, pairs)
    local = {p: i for i, p in enumerate(active)}
    prelude: list[list] = [[] for _ in active]
    pending: dict[int, SuperOp] = {}  # local qubit -> single-qubit channel not yet emitted
    entangled: set[int] = set()
    main: list = []  # (qubits, SuperOp) while compiling
    last: dict[int, int] = {}  # local qubit -> index in main of the last channel on it
    measured: dict[int, int] = {}  # clbit -> local qubit
    superops: dict = {}
    one_q = two_q = 0

    def flush(q: int) -> None:  # emit a pending single-qubit channel
        if q in pending:
            ch = pending.pop(q)
            if q in entangled:
                main.append(((q,), ch))
                last[q] = len(main) - 1
            else:
                prelude[q].append(ch)

    for inst in circuit.data:
        op = inst.operation
        qs = tuple(local[phys_of[q]] for q in inst.qubits)
        phys = tuple(phys_of[q] for q in inst.qubits)
        if op.name == "barrier":
            continue
        if op.name == "measure":
            clbit = circuit.find_bit(inst.clbits[0]).index
            measured[clbit] = qs[0]
            continue
        if set(qs) & set(measured.values()):
            raise DeviceError(f"'{op.name}' after a measurement: the emulator models final measurements only")
        if op.name not in ("rz", "sx", "x", "ecr", "cz", "cx", "id") or len(qs) > 2:
            raise DeviceError(f"the emulator cannot model instruction '{op.name}' on {len(qs)} qubits")
        error = errors.get((op.name, phys))
        if error is not None and (op.name, phys) not in superops:  # QuantumError -> SuperOp is slow: once each
            superops[(op.name, phys)] = SuperOp(error)
        error = superops.get((op.name, phys))
        if op.params and isinstance(op.params[0], ParameterExpression) and op.params[0].parameters:
            if qs[0] in entangled:
                raise DeviceError("an input-dependent gate after a two-qubit gate; the emulator encodes inputs first")
            flush(qs[0])
            prelude[qs[0]].append(InputRZ(qs[0], *_affine(op.params[0])))
            if error is not None:
                pending[qs[0]] = error
            one_q += 1
            continue
        ch = SuperOp(Operator(op))
        if error is not None:
            ch = ch.compose(error)
        if len(qs) == 1:
            one_q += 1
            pending[qs[0]] = pending[qs[0]].compose(ch) if qs[0] in pending else ch
            continue
        two_q += 1
        a, b = qs  # qiskit qarg 0 = a; our matrices put the first qubit most significant -> qargs [b, a]
        ch = SuperOp(np.eye(16)).compose(ch, qargs=[1, 0])  # ch on (qiskit 1 = a, 0 = b)
        for q, qarg in ((a, 1), (b, 0)):
            if q in pending:
                ch = SuperOp(np.eye(16)).compose(pending.pop(q), qargs=[qarg]).compose(ch)
        prev = last.get(a)
        if prev is not None and prev == last.get(b) and set(main[prev][0]) == {a, b}:
            pq, pch = main[prev]
            if pq != (a, b):  # the earlier channel's matrix has (b, a) order: swap it
                from qiskit.circuit.library import SwapGate

                swap = SuperOp(Operator(SwapGate()))
                pch = swap.compose(pch).compose(swap)
            main[prev] = ((a, b), pch.compose(ch))
        else:
            entangled.update((a, b))
            main.append(((a, b), ch))
            last[a] = last[b] = len(main) - 1
    for q in list(pending):
        flush(q)
    channels = [_channel(ch, qs) for qs, ch in main]
    prelude_ops = [[op if isinstance(op, InputRZ) else _channel(op, (q,)) for op in ops] for q, ops in enumerate(prelude)]
    order = sorted(measured)
    probs = torch.tensor([readout.get(active[measured[c]], (0.0, 0.0)) for c in order], dtype=torch.float64)
    stats = {"active_qubits": len(active), "one_qubit_gates": one_q, "two_qubit_gates": two_q,
             "channels": len(channels)}  # fmt: skip
    return Program(len(active), prelude_ops, channels, [measured[c] for c in order], probs.reshape(-1, 2), stats)


def path_order(nodes: list[int], pairs: set[tuple[int, int]]) -> list[int]:
    """``nodes`` ordered along a longest simple path of the coupling graph ``pairs`` (the qubits a routed
    circuit couples; a path or nearly one on heavy-hex devices), the others inserted after a neighbour,
    so that most two-qubit channels act on adjacent simulated qubits. Exhaustive over simple paths
    (fine for the dozen active qubits of these circuits; beyond 20 nodes the sorted order is kept)."""
    if len(nodes) > 20:
        return sorted(nodes)
    nbrs: dict[int, list[int]] = {n: [] for n in nodes}
    for a, b in sorted(pairs):
        nbrs[a].append(b)
        nbrs[b].append(a)
    best: list[int] = []

    def walk(path: list[int]) -> None:
        nonlocal best
        if len(path) > len(best):
            best = list(path)
        for m in nbrs[path[-1]]:
            if m not in path:
                path.append(m)
                walk(path)
                path.pop()

    for n in sorted(nodes):
        walk([n])
    order = list(best)
    for n in sorted(set(nodes) - set(order)):
        near = [order.index(m) for m in nbrs[n] if m in order]
        order.insert(near[0] + 1 if near else len(order), n)
    return order


def _pick(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Index drawn from each row of ``probs`` (B, k) (not necessarily normalised)."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp_max(probs.shape[-1] - 1).squeeze(-1)


def _to_last(state: torch.Tensor, order: list[int], ch: Channel) -> tuple[torch.Tensor, list[int], Channel]:
    """``state`` (B, 2^k) with the channel's qubits moved last: (B, 2^k / d, d), the new qubit order and
    the channel in that order. Already-last qubits cost nothing (in either order); otherwise one strided
    copy of a view that groups the untouched qubits into runs."""
    b, k = state.shape[0], len(order)
    pos = [order.index(q) for q in ch.qubits]
    if sorted(pos) == list(range(k - len(pos), k)):
        if pos != sorted(pos):
            ch = ch.swapped
        return state.reshape(b, -1, 2 ** len(pos)), order[: k - len(pos)] + list(ch.qubits), ch
    shape, runs, singles, at = [b], [], {}, 0
    for p in sorted(pos):
        if p > at:
            runs.append(len(shape))
            shape.append(2 ** (p - at))
        singles[p] = len(shape)
        shape.append(2)
        at = p + 1
    if at < k:
        runs.append(len(shape))
        shape.append(2 ** (k - at))
    state = state.reshape(shape).permute([0] + runs + [singles[p] for p in pos]).reshape(b, -1, 2 ** len(pos))
    return state, [q for q in order if q not in ch.qubits] + list(ch.qubits), ch


def _apply_channel(state: torch.Tensor, ch: Channel, generator: torch.Generator) -> torch.Tensor:
    """One trajectory step: ``state`` (B, M, d) with the channel's qubits last -> (B, M, d)."""
    if ch.kraus.shape[0] == 1:
        return state @ ch.kraus[0].T
    b, _, d = state.shape
    rho = state.transpose(1, 2) @ state.conj()  # rho[b, i, j] = sum_m psi[m, i] conj(psi[m, j])
    probs = (rho.reshape(b, d * d) @ ch.probe).real.clamp_min(0)
    pick = _pick(probs, generator)
    norm = probs.gather(1, pick[:, None]).clamp_min(1e-30).sqrt()
    return state @ (ch.kraus[pick] / norm[:, :, None]).transpose(1, 2)


def _prelude_state(program: Program, inputs: torch.Tensor, reps: int, generator) -> torch.Tensor:
    """(N * reps, 2, ..., 2) product state after every qubit's prelude (inputs (N, n_inputs))."""
    rows = inputs.repeat_interleave(reps, 0).to(torch.float64)
    b = rows.shape[0]
    state = None
    for ops in program.prelude:
        v = torch.zeros(b, 1, 2, dtype=torch.complex64, device=rows.device)
        v[:, 0, 0] = 1
        for op in ops:
            if isinstance(op, InputRZ):
                half = (op.coeff * rows[:, op.column] + op.offset) / 2
                phase = torch.polar(torch.ones_like(half), half).to(torch.complex64)
                v = v * torch.stack([phase.conj(), phase], -1)[:, None, :]
            else:
                v = _apply_channel(v, op, generator)
        v = v.reshape(b, 2)
        state = v if state is None else (state.unsqueeze(-1) * v.unsqueeze(-2)).reshape(b, -1)
    return state


def run_program(
    program: Program,
    inputs: torch.Tensor,
    trajectories: int,
    shots: int | None,
    generator: torch.Generator,
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """<Z> of every measured bit for every input, with its standard error.

    ``inputs`` (N, n_inputs) real (radians); ``trajectories`` T >= 2 per input; ``shots`` S per input
    (a multiple of T: S / T shots are drawn from each trajectory, with readout bit flips), or None for
    the exact readout-corrupted marginals averaged over the T trajectories. Runs on ``inputs``' device
    (CPU or CUDA, the latter not yet run on a GPU; ``generator`` must be on the same device). Returns (N, n_clbits)
    estimates and standard errors; the error is the spread of the T per-trajectory estimates over
    sqrt(T), which counts both the trajectory and the shot noise. Trajectories run in chunks of
    ``chunk`` states (memory: chunk x 2^n_active x 8 bytes, twice).
    """
    if trajectories < 2:
        raise ValueError(f"trajectories must be at least 2, got {trajectories}")
    if shots is not None and shots % trajectories:
        raise ValueError(f"shots ({shots}) must be a multiple of trajectories ({trajectories})")
    n = inputs.shape[0]
    program = program.to(inputs.device)
    per_traj = []
    rows_per_chunk = max(1, chunk // trajectories)
    for start in range(0, n, rows_per_chunk):
        x = inputs[start : start + rows_per_chunk]
        state = _prelude_state(program, x, trajectories, generator)
        order = list(range(program.num_qubits))
        for ch in program.main:
            moved, order, ch = _to_last(state, order, ch)
            state = _apply_channel(moved, ch, generator).reshape(state.shape[0], -1)
        per_traj.append(_measure(program, state, order, shots // trajectories if shots else None, generator))
    z = torch.cat(per_traj).reshape(n, trajectories, -1)  # per-trajectory estimates
    return z.mean(1), z.std(1) / trajectories**0.5


def _measure(program: Program, state: torch.Tensor, order: list[int], shots: int | None, generator) -> torch.Tensor:
    """Per-trajectory <Z> of each measured bit (B, n_clbits) with readout errors, exact or from ``shots``."""
    probs = state.real.square() + state.imag.square()
    probs = probs / probs.sum(-1, keepdim=True)
    dev = state.device
    cols = torch.tensor([order.index(q) for q in program.measured], device=dev)
    p10, p01 = program.readout[:, 0].to(dev), program.readout[:, 1].to(dev)
    if shots is None:
        p1 = probs.double() @ (1 - _z_signs(len(order), str(dev), torch.float64)[:, cols]) / 2
        p1 = p1 * (1 - p01) + (1 - p1) * p10
        return (1 - 2 * p1).float()
    cdf = probs.double().cumsum(-1)
    u = torch.rand(probs.shape[0], shots, generator=generator, dtype=torch.float64, device=dev) * cdf[:, -1:]
    draws = torch.searchsorted(cdf, u).clamp_max(probs.shape[-1] - 1)  # (B, s) basis states
    shift = torch.tensor([len(order) - 1 - c for c in cols.tolist()], device=dev)
    bits = (draws[..., None] >> shift) & 1  # (B, s, n_clbits)
    flip = torch.rand(bits.shape, generator=generator, dtype=torch.float64, device=dev) < torch.where(bits == 1, p01, p10)
    bits = bits ^ flip.long()
    return (1 - 2 * bits.double().mean(1)).float()
