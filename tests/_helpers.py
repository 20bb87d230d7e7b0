"""Small helpers shared by the tests (imported as ``_helpers``; pytest puts tests/ on the path)."""

import torch

from nisqdiff.circuits import ExactSimulator, ExpvalResult


def run_one(device, ansatz, weights, inputs) -> ExpvalResult:
    """One circuit through the executor contract: weights (n_weights,), inputs (N, n_qubits) ->
    the ExpvalResult of that single circuit, evs and stds (N, n_qubits)."""
    res = device.run(ansatz, inputs.unsqueeze(0), weights.unsqueeze(0))
    return ExpvalResult(res.evs[0], res.stds[0], res.metadata, res.circuit_metadata)


class Recording(ExactSimulator):
    """The exact simulator, recording every call's (ansatz, inputs shape, weights shape); with ``zeros``
    it returns <Z> = 0 instead of simulating."""

    def __init__(self, zeros: bool = False):
        self.calls, self.zeros = [], zeros

    def run(self, ansatz, inputs, weights):
        self.calls.append((ansatz, tuple(inputs.shape), tuple(weights.shape)))
        if self.zeros:
            return ExpvalResult(torch.zeros_like(inputs), torch.zeros_like(inputs))
        return super().run(ansatz, inputs, weights)
