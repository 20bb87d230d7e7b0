"""Qiskit circuits built from the same gate list as every other executor.

:func:`qiskit_circuit` gives a parameterised ``QuantumCircuit`` (``ParameterVector`` "x" for the RX
encoding angles, "theta" for the weights); :func:`bind_weights` fixes trained weights and leaves the
inputs free, so a circuit is transpiled once and then run with an (N, n_qubits) array of inputs.
Qiskit's RX/RY/RZ/CRX/CRZ/CX conventions equal PennyLane's; only bitstring order differs (Qiskit prints
qubit 0 rightmost), which Qiskit's ``BitArray`` handles in :func:`z_from_bits`.
"""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from .ansatz import gates, get_spec


def qiskit_circuit(ansatz: str, measure: bool = True) -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """(circuit, x, theta) for ``ansatz``: RX(x_q) on every qubit, the ansatz's gates with angles
    ``scale * theta[w]``, and (``measure``) a measurement of every qubit into classical bit q."""
    spec = get_spec(ansatz)
    x = ParameterVector("x", spec.n_qubits)
    theta = ParameterVector("theta", spec.n_weights)
    qc = QuantumCircuit(spec.n_qubits, name=ansatz)
    for q in range(spec.n_qubits):
        qc.rx(x[q], q)
    for g in gates(ansatz):
        if g.name == "CNOT":
            qc.cx(*g.wires)
        elif g.name in ("RX", "RY", "RZ"):
            getattr(qc, g.name.lower())(g.scale * theta[g.weight], g.wires[0])
        elif g.name == "CRZ":
            qc.crz(g.scale * theta[g.weight], *g.wires)
        elif g.name == "CRX":
            qc.crx(g.scale * theta[g.weight], *g.wires)
        else:  # pragma: no cover - the ansatz module defines only these
            raise ValueError(f"no Qiskit gate for {g.name}")
    if measure:
        qc.measure_all()
    return qc, x, theta


def bind_weights(ansatz: str, weights, measure: bool = True) -> QuantumCircuit:
    """The circuit with ``weights`` (n_weights,) bound; the inputs x[0..n-1] stay free parameters."""
    qc, _, theta = qiskit_circuit(ansatz, measure)
    values = np.asarray(weights, dtype=float).reshape(-1)
    if values.shape != (len(theta),):
        raise ValueError(f"{ansatz} needs {len(theta)} weights, got {values.shape[0]}")
    return qc.assign_parameters(dict(zip(theta, values)))


def input_columns(circuit: QuantumCircuit) -> list[int]:
    """For each of ``circuit.parameters`` (Qiskit's order), the input column it takes (x[i] -> i)."""
    return [p.index for p in circuit.parameters]


def z_from_bits(bits, n_qubits: int) -> np.ndarray:
    """<Z_q> (N, n_qubits) from a ``BitArray`` of shape (N,) with ``shots`` shots (classical bit q is
    qubit q): 1 - 2 x the fraction of shots in which bit q is 1, from ``BitArray.to_bool_array``."""
    ones = bits.to_bool_array(order="little")[..., :n_qubits]  # (N, shots, n): bit q at index q
    return 1.0 - 2.0 * ones.mean(axis=-2)
