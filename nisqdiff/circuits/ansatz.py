"""The one gate-by-gate definition of each variational ansatz (SPEC.md, "Variational circuits").

Every executor (the batched torch simulator, the PennyLane reference, later Qiskit) is built from
:func:`gates`. A circuit is: RX(x_q) encoding on every qubit q (raw activation as the angle), then
``n_layers`` layers of the ansatz, then <Z_q> on every qubit. Weights are one flat vector per
circuit, layer-major; a gate's angle is ``scale * weights[index]`` (scale 2*pi for HQConv/FQConv,
1 for Basic, as De Falco et al. 2024 and SPEC.md define them).

The ring ansatz of Chen et al. 2025 (arXiv 2504.00034, the quantum bottleneck) has a name per size,
``ring<n>x<layers>`` (``ring12x3``, ``ring16x3``): per layer RY(w) RZ(w) on every qubit, then
CNOT(q, q+1 mod n) for q = 0..n-1; 2n weights per layer, angle = weight (scale 1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class Gate:
    """One gate. ``name`` in {"RX", "RY", "RZ", "CRZ", "CRX", "CNOT"}; ``wires`` is (target,) or (control, target);
    ``weight`` is the index into the circuit's flat weight vector (None for CNOT); angle = scale * w.
    ``group`` is a fusion hint for simulators: gates sharing a group may be fused into one dense block
    (the simulator checks that doing so commutes past nothing it must not)."""

    name: str
    wires: tuple[int, ...]
    weight: int | None = None
    scale: float = 1.0
    group: str = ""


@dataclass(frozen=True)
class AnsatzSpec:
    """Shape of an ansatz: qubits, layers and weights per layer (weights per circuit = their product)."""

    name: str
    n_qubits: int
    n_layers: int
    weights_per_layer: int
    groups: tuple[tuple[int, ...], ...] | None = None  # qubit groups for chain simulation (channels)

    @property
    def n_weights(self) -> int:
        return self.n_layers * self.weights_per_layer


ANSATZE = {
    "hqconv": AnsatzSpec("hqconv", 12, 3, 28, ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11))),
    "fqconv": AnsatzSpec("fqconv", 12, 3, 24),
    "basic": AnsatzSpec("basic", 4, 4, 4),
}


_RING = re.compile(r"ring(\d+)x(\d+)")
RING_QUBITS, RING_LAYERS = range(2, 21), range(1, 11)  # what a name may ask for


def ring_name(n_qubits: int, n_layers: int) -> str:
    """The ansatz name of the ring circuit with ``n_qubits`` qubits and ``n_layers`` layers."""
    return f"ring{n_qubits}x{n_layers}"


@lru_cache(maxsize=None)
def get_spec(ansatz: str) -> AnsatzSpec:
    """The :class:`AnsatzSpec` of ``ansatz`` (a name of :data:`ANSATZE` or ``ring<n>x<layers>``, n in
    2..20, layers in 1..10); ``ValueError`` naming the valid ansatzes otherwise."""
    if ansatz in ANSATZE:
        return ANSATZE[ansatz]
    m = _RING.fullmatch(ansatz)
    if m and int(m[1]) in RING_QUBITS and int(m[2]) in RING_LAYERS:
        return AnsatzSpec(ansatz, int(m[1]), int(m[2]), 2 * int(m[1]))
    raise ValueError(f"unknown ansatz '{ansatz}'; valid: {', '.join(ANSATZE)}, ring<n>x<layers> (n 2-20, layers 1-10)")


def _hqconv_layer(o: int) -> list[Gate]:
    g = []
    for c in range(3):  # A blocks: stride 1 inside channel c, CRZ then CRX
        for k, i in enumerate([3, 2, 1, 0]):
            ctrl, tgt = 4 * c + (i + 1) % 4, 4 * c + i
            g.append(Gate("CRZ", (ctrl, tgt), o + 8 * c + 2 * k, TWO_PI, f"{o}A{c}"))
            g.append(Gate("CRX", (ctrl, tgt), o + 8 * c + 2 * k + 1, TWO_PI, f"{o}A{c}"))
    g.append(Gate("CRZ", (4, 8), o + 24, TWO_PI, f"{o}B"))  # B blocks across channels
    g.append(Gate("CRX", (4, 8), o + 25, TWO_PI, f"{o}B"))
    g.append(Gate("CRZ", (0, 4), o + 26, TWO_PI, f"{o}B"))
    g.append(Gate("CRX", (0, 4), o + 27, TWO_PI, f"{o}B"))
    return g


def _fqconv_layer(o: int) -> list[Gate]:
    g = []
    for j, (t, s) in enumerate([(2, 0), (1, 2), (0, 1)]):  # stride 4: pixel i of channel s -> of channel t
        for k, i in enumerate([3, 2, 1, 0]):
            g.append(Gate("CRZ", (4 * s + i, 4 * t + i), o + 8 * j + k, TWO_PI, f"P{i}"))
        for k, i in enumerate([3, 2, 1, 0]):
            g.append(Gate("CRX", (4 * s + i, 4 * t + i), o + 8 * j + 4 + k, TWO_PI, f"P{i}"))
    return g  # every gate acts inside pixel i's qubits {i, 4+i, 8+i}: 3-qubit blocks across all layers


def _basic_layer(o: int) -> list[Gate]:
    g = [Gate("RX", (i,), o + i, 1.0, "all") for i in range(4)]
    g += [Gate("CNOT", (i, (i + 1) % 4), group="all") for i in range(4)]
    return g


def _ring_layer(o: int, n: int) -> list[Gate]:
    # RY RZ on every qubit, then the CNOT ring. Listed so that qubit q's rotations come just before
    # CNOT(q-1, q), the first gate after them on q (the same unitary), and fused with it into one
    # 4x4 block on (q-1, q): n blocks per layer instead of a dense 2^n one.
    g = []
    for q in range(n):
        group = f"{o}b{max(q - 1, 0)}"
        g += [Gate("RY", (q,), o + 2 * q, 1.0, group), Gate("RZ", (q,), o + 2 * q + 1, 1.0, group)]
        if q:
            g.append(Gate("CNOT", (q - 1, q), group=group))
    return g + [Gate("CNOT", (n - 1, 0), group=f"{o}b{n - 1}")]


_LAYERS = {"hqconv": _hqconv_layer, "fqconv": _fqconv_layer, "basic": _basic_layer}


@lru_cache(maxsize=None)
def gates(ansatz: str) -> tuple[Gate, ...]:
    """All trainable gates of ``ansatz`` (after the RX encoding), in application order, all layers."""
    spec = get_spec(ansatz)
    out: list[Gate] = []
    for layer in range(spec.n_layers):
        o = layer * spec.weights_per_layer
        out += _LAYERS[ansatz](o) if ansatz in _LAYERS else _ring_layer(o, spec.n_qubits)
    return tuple(out)
