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


def literal_linear_attention(m, x):
    """lucidrains' linear attention written out as the paper's code does it (qkv conv, softmaxes, einsums)."""
    n, _, h, w = x.shape
    xn = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5) * m.norm.g
    q, k, v = torch.nn.functional.conv2d(xn, m.to_qkv.weight).reshape(n, 3, m.heads, -1, h * w).unbind(1)
    q, k, v = q.softmax(dim=-2) * m.scale, k.softmax(dim=-1), v / (h * w)
    context = torch.einsum("bhdn,bhen->bhde", k, v)
    out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(n, -1, h, w)
    conv, ln = m.to_out
    out = conv(out)
    out = (out - out.mean(1, keepdim=True)) / torch.sqrt(out.var(1, unbiased=False, keepdim=True) + 1e-5) * ln.g
    return x + out
