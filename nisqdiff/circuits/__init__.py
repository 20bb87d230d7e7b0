"""Variational circuits of the hybrid U-Nets: definitions, fast simulation and executors.

:func:`expval` is the public entry point; :class:`CircuitExecutor` is the narrow interface the
models call (inputs and weights in, <Z> out), so that other devices can stand behind it.
"""

from __future__ import annotations

import torch

from .ansatz import ANSATZE, AnsatzSpec, Gate, gates, get_spec
from .simulator import simulate


def expval(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """<Z_q> of one circuit on a batch: inputs (B, n_qubits) RX angles, weights (n_weights,) flat and
    layer-major (84 for "hqconv", 72 for "fqconv", 16 for "basic"). Returns (B, n_qubits) in [-1, 1].

    Differentiable in inputs and weights; runs on the inputs' device. Raises ``ValueError`` for an
    unknown ansatz or wrong shapes. Gates and angles follow SPEC.md (De Falco et al. 2024).
    """
    spec = get_spec(ansatz)
    if inputs.dim() != 2 or weights.dim() != 1:
        raise ValueError(f"expval expects inputs (B, {spec.n_qubits}) and weights ({spec.n_weights},)")
    return simulate(ansatz, inputs.unsqueeze(0), weights.unsqueeze(0)).squeeze(0)


class CircuitExecutor:
    """Runs C circuits of one ansatz on a batch: ``(inputs (C, B, n_qubits), weights (C, n_weights))
    -> <Z> (C, B, n_qubits)``. The default is the exact, differentiable statevector simulator; a noisy
    simulator or a quantum computer implements the same call."""

    name = "noiseless"

    def __call__(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return simulate(ansatz, inputs, weights)


__all__ = ["ANSATZE", "AnsatzSpec", "CircuitExecutor", "Gate", "expval", "gates", "get_spec", "simulate"]
