"""Variational circuits of the hybrid U-Nets: definitions, fast simulation and executors.

:func:`expval` is the public entry point; :mod:`.executor` holds the contract the models call
(:class:`CircuitExecutor`: inputs and weights in, <Z> with standard errors out) and the exact
simulator behind it, so that other devices can stand behind a model.
"""

from __future__ import annotations

import torch

from .ansatz import ANSATZE, AnsatzSpec, Gate, gates, get_spec
from .chain import chain_probabilities, simulate_chain, supports
from .simulator import simulate_statevector, statevector_probabilities
from .executor import CircuitExecutor, ExactSimulator, ExecutionLog, ExpvalResult, merge_summaries

METHODS = ("auto", "statevector", "chain")


def _check(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor, method: str) -> bool:
    """Validate a (C, B, n) / (C, n_weights) call; True where the chain method is to be used."""
    spec = get_spec(ansatz)
    if inputs.dim() != 3 or inputs.shape[-1] != spec.n_qubits:
        raise ValueError(f"{ansatz} inputs must be (C, B, {spec.n_qubits}), got {tuple(inputs.shape)}")
    if weights.shape != (inputs.shape[0], spec.n_weights):
        raise ValueError(f"{ansatz} weights must be ({inputs.shape[0]}, {spec.n_weights}), got {tuple(weights.shape)}")
    if method not in METHODS:
        raise ValueError(f"unknown simulation method '{method}'; valid: {', '.join(METHODS)}")
    if method == "chain" and not supports(ansatz):
        raise ValueError(f"{ansatz} has gates the chain method cannot take; use method='statevector'")
    return method == "chain" or (method == "auto" and supports(ansatz))


def simulate(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """<Z_q> for a batch of inputs on each of C circuits of the same ansatz.

    inputs: (C, B, n_qubits) real RX angles (radians); weights: (C, n_weights) real, layer-major as
    :mod:`nisqdiff.circuits.ansatz` defines them. Returns (C, B, n_qubits) in [-1, 1], same dtype
    (float64 simulates in complex128, float32 in complex64), on the inputs' device; differentiable
    in both. ``method``: "statevector" (fused blocks on a factorised state), "chain" (exact
    matrix-product state over the ansatz's qubit groups; HQConv) or "auto" (chain where supported).
    Raises ``ValueError`` for an unknown ansatz or method, wrong shapes, or an unsupported method.
    """
    chain = _check(ansatz, inputs, weights, method)
    weights = weights.to(inputs.dtype)
    return (simulate_chain if chain else simulate_statevector)(ansatz, inputs, weights)


def probabilities(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Born probabilities of every computational basis state of C circuits on a batch: inputs
    (C, B, n_qubits) RX angles, weights (C, n_weights) -> (C, B, 2^n_qubits) real, summing to 1, basis
    index bits in qubit order (qubit 0 most significant, PennyLane's convention). Same methods and
    errors as :func:`simulate`; the chain method contracts its (bond <= 8) state into the full vector.
    For shot sampling (the ``shots`` device); not meant to be differentiated."""
    chain = _check(ansatz, inputs, weights, method)
    weights = weights.to(inputs.dtype)
    return (chain_probabilities if chain else statevector_probabilities)(ansatz, inputs, weights)


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


__all__ = [
    "ANSATZE",
    "METHODS",
    "AnsatzSpec",
    "CircuitExecutor",
    "ExactSimulator",
    "ExecutionLog",
    "merge_summaries",
    "ExpvalResult",
    "Gate",
    "expval",
    "gates",
    "get_spec",
    "probabilities",
    "simulate",
]
