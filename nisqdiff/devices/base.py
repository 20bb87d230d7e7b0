"""The device interface and the adapter that puts a device behind a model.

A device takes one circuit (ansatz and its trained weights) and a batch of inputs (N, n_qubits) and
returns <Z_q> (N, n_qubits) with standard errors (zero where exact) and run metadata. Sampling calls
every circuit stage of a denoising step once with all images of the batch: ``run_many`` receives the
C circuits of the stage, which a primitive-based device sends as C PUBs (each with an (N, n_qubits)
parameter array) in one primitive call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..circuits import get_spec


@dataclass
class DeviceResult:
    """<Z_q> (N, n_qubits), its standard error (N, n_qubits) and the run's metadata."""

    expval: torch.Tensor
    stderr: torch.Tensor
    metadata: dict = field(default_factory=dict)


class Device:
    """Base class: ``run(ansatz, weights (n_weights,), inputs (N, n_qubits)) -> DeviceResult``.

    ``run_many(ansatz, weights (C, n_weights), inputs (C, N, n_qubits))`` runs the C circuits of one
    stage; the default calls ``run`` per circuit, primitive devices override it with one call.
    ``close()`` releases what the device holds (a runtime session); a device is a context manager.
    """

    name = "device"

    def settings(self) -> dict:
        """What identifies this device's results (recorded next to the images)."""
        return {"device": self.name}

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        raise NotImplementedError

    def run_many(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> list[DeviceResult]:
        return [self.run(ansatz, w, x) for w, x in zip(weights, inputs)]

    def reseed(self, seed: int) -> None:
        """Restart the device's random streams from ``seed`` (a study seeds every batch this way, so a
        resumed batch draws exactly what it drew the first time)."""
        self.seed, self.calls = seed, 0

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _check(ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> None:
        spec = get_spec(ansatz)
        if inputs.dim() == 2 and inputs.shape[0] == 0:
            raise ValueError("a device call needs at least one input row")
        if inputs.dim() != 2 or inputs.shape[1] != spec.n_qubits or weights.shape != (spec.n_weights,):
            raise ValueError(
                f"{ansatz} expects inputs (N, {spec.n_qubits}) and weights ({spec.n_weights},), "
                f"got {tuple(inputs.shape)} and {tuple(weights.shape)}"
            )


def check_shots(shots: int) -> int:
    """``shots`` if a standard error can be estimated from it (at least 2), else ``ValueError``."""
    if shots < 2:
        raise ValueError(f"--shots must be at least 2, got {shots}")
    return shots


def shot_stderr(z: torch.Tensor, shots: int) -> torch.Tensor:
    """Standard error of a <Z> estimated from ``shots`` +-1 outcomes: sqrt((1 - <Z>^2) / (shots - 1)),
    the sample standard deviation over sqrt(shots)."""
    return ((1 - z.square()).clamp_min(0) / (shots - 1)).sqrt()


class SamplerDevice(Device):
    """A device that runs bound, transpiled Qiskit circuits through a SamplerV2 (Aer or IBM).

    ``_transpile(circuit)`` runs once per ansatz and weights (cached here): qiskit's ``transpile``
    with the subclass's ``transpile_options`` (backend or Target), ``optimization_level`` and
    ``seed_transpiler`` 0, unless a subclass overrides it. Subclasses give
    ``_execute(circuits, values) -> (bits per circuit, metadata)`` (one primitive call or job per
    stage) and ``_readout()`` (the snapshot and scale whose assignment matrices to invert, or None).
    ``run_many`` maps the measured bits to <Z_q> through each circuit's final layout, with standard
    errors, and applies readout mitigation where asked.
    """

    shots: int
    optimization_level: int
    transpile_options: dict
    _cache: dict

    def _transpile(self, circuit):
        from qiskit import transpile

        return transpile(circuit, **self.transpile_options, optimization_level=self.optimization_level, seed_transpiler=0)

    def _execute(self, circuits: list, values: list) -> tuple[list, dict]:
        raise NotImplementedError

    def _readout(self) -> tuple[dict, float] | None:
        return None

    def transpiled(self, ansatz: str, weights: torch.Tensor):
        """The circuit with these weights bound, transpiled for the device (on first use only)."""
        from ..circuits.qiskit_build import bind_weights

        key = (ansatz, weights.double().numpy().tobytes())
        if key not in self._cache:
            self._cache[key] = with_stats(self._transpile(bind_weights(ansatz, weights.double().numpy())))
        return self._cache[key]

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        return self.run_many(ansatz, weights.unsqueeze(0), inputs.unsqueeze(0))[0]

    def run_many(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> list[DeviceResult]:
        from ..calibration import readout_probs
        from ..circuits.qiskit_build import input_columns, z_from_bits

        for w, x in zip(weights, inputs):
            self._check(ansatz, w, x)
        t0 = time.perf_counter()
        circuits = [self.transpiled(ansatz, w) for w in weights]
        t1 = time.perf_counter()
        values = [x.double().numpy()[:, input_columns(c)] for c, x in zip(circuits, inputs)]
        bits, meta = self._execute(circuits, values)
        meta = {**self.settings(), **meta, "seconds": time.perf_counter() - t0, "transpile_seconds": t1 - t0}
        readout = self._readout()
        out = []
        for circuit, b in zip(circuits, bits):
            z = torch.from_numpy(z_from_bits(b, inputs.shape[-1]))
            res = DeviceResult(z.to(inputs.dtype), shot_stderr(z, self.shots).to(inputs.dtype), meta | circuit.metadata)
            if readout is not None:
                snapshot, scale = readout
                probs = [readout_probs(snapshot["qubits"][p], scale) for p in circuit.layout.final_index_layout()]
                res = mitigate_readout(res, *torch.tensor(probs, dtype=torch.float64).unbind(-1))
            out.append(res)
        return out


class DeviceExecutor:
    """Puts a :class:`Device` behind a model (``UNet.set_executor``): the executor call
    ``(ansatz, inputs (C, B, n), weights (C, n_weights)) -> <Z> (C, B, n)`` becomes one
    ``run_many`` call (one circuit stage: C circuits, all B inputs each). Not differentiable
    (sampling only). Counts stage calls, circuit executions and seconds for the run's metadata."""

    def __init__(self, device: Device):
        self.device = device
        self.calls = 0
        self.executions = 0
        self.seconds = 0.0
        self.max_stderr = 0.0
        self.stderr_sum = 0.0

    def __call__(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        results = self.device.run_many(ansatz, weights.detach().cpu(), inputs.detach().cpu())
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.executions += inputs.shape[0] * inputs.shape[1]
        for res in results:
            self.max_stderr = max(self.max_stderr, float(res.stderr.max()))
            self.stderr_sum += float(res.stderr.mean()) / len(results)
        return torch.stack([r.expval for r in results]).to(device=inputs.device, dtype=inputs.dtype)

    def summary(self) -> dict:
        return {
            **self.device.settings(),
            "device_calls": self.calls,
            "circuit_executions": self.executions,
            "device_seconds": round(self.seconds, 3),
            "max_stderr": self.max_stderr,
            "mean_stderr": self.stderr_sum / max(self.calls, 1),
        }


def mitigate_readout(result: DeviceResult, p10: torch.Tensor, p01: torch.Tensor) -> DeviceResult:
    """Invert each measured qubit's 2x2 assignment matrix on its marginal (exact for independent
    readout errors): p1 = (p1_measured - P(1|0)) / (1 - P(1|0) - P(0|1)). ``p10``, ``p01``: (n_qubits,)
    per logical qubit; the standard error grows by the same gain. Result clamped to [-1, 1]."""
    gain = (1 - p10 - p01).clamp_min(1e-3).to(result.expval.dtype)
    p1 = ((1 - result.expval) / 2 - p10.to(result.expval.dtype)) / gain
    meta = {**result.metadata, "readout_mitigated": True}
    return DeviceResult((1 - 2 * p1).clamp(-1, 1), result.stderr / gain, meta)


def with_stats(circuit):
    """``circuit`` (transpiled) with its depth and two-qubit gate count in ``circuit.metadata``, which
    devices copy into each result's metadata."""
    circuit.metadata = {
        **(circuit.metadata or {}),
        "depth": circuit.depth(),
        "two_qubit_gates": sum(1 for inst in circuit.data if inst.operation.num_qubits == 2),
    }
    return circuit


def call_seed(seed: int, call: int) -> int:
    """A 63-bit simulator seed for call ``call`` of a device seeded with ``seed``. Qiskit Aer seeds
    shot i of a run with seed_simulator + i, so consecutive integers would replay the same noise
    trajectories shifted by one shot in every call; SeedSequence-derived seeds keep calls independent
    (and reproducible)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, call]).generate_state(1, np.uint64)[0] >> np.uint64(1))
