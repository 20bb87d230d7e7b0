"""Small helpers shared by the tests (imported as ``_helpers``; pytest puts tests/ on the path)."""

from nisqdiff.circuits import ExpvalResult


def run_one(device, ansatz, weights, inputs) -> ExpvalResult:
    """One circuit through the executor contract: weights (n_weights,), inputs (N, n_qubits) ->
    the ExpvalResult of that single circuit, evs and stds (N, n_qubits)."""
    res = device.run(ansatz, inputs.unsqueeze(0), weights.unsqueeze(0))
    return ExpvalResult(res.evs[0], res.stds[0], res.metadata, res.circuit_metadata)
