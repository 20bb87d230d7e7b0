"""The circuits as PennyLane QNodes, built from the same gate list: the tests' reference and the
``pennylane`` device.

``default.qubit`` with ``interface="torch"``, backprop differentiation and parameter broadcasting over
the batch: the independent implementation the fast simulator is checked against. On any other
PennyLane device: what :class:`nisqdiff.devices.pennylane.PennyLaneDevice` runs.
"""

from __future__ import annotations

import pennylane as qml
import torch

from .ansatz import gates, get_spec

_OPS = {"RX": qml.RX, "RY": qml.RY, "RZ": qml.RZ, "CRZ": qml.CRZ, "CRX": qml.CRX}


def pennylane_qnode(ansatz: str, device=None, shots: int | None = None):
    """A torch QNode ``f(inputs (B, n_qubits), weights (n_weights,)) -> (B, n_qubits)`` of <Z_q>.

    ``device``: a PennyLane device (default ``default.qubit`` with backprop); e.g. pennylane-qiskit's
    ``qiskit.aer``, which transpiles and submits every circuit separately (a cross-check only).
    ``shots``: finite shots through ``qml.set_shots`` (None: analytic, also on devices that sample by
    default)."""
    n = get_spec(ansatz).n_qubits
    dev = device or qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="backprop" if device is None else "best")
    def circuit(inputs, weights):
        for q in range(n):
            qml.RX(inputs[..., q], wires=q)
        for g in gates(ansatz):
            if g.name == "CNOT":
                qml.CNOT(wires=list(g.wires))
            else:
                _OPS[g.name](g.scale * weights[g.weight], wires=list(g.wires))
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    if shots is not None or device is not None:  # some devices (qiskit.aer) sample 1024 shots unless told None
        circuit = qml.set_shots(circuit, shots=shots)

    def run(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(circuit(inputs, weights)), -1)

    return run
