"""The device base class: the :class:`~nisqdiff.circuits.executor.CircuitExecutor` contract for devices.

A device runs one circuit stage: C circuits of one ansatz (trained weights (C, n_weights)), each on all
inputs of a denoising step (C, N, n_qubits), and returns <Z_q> with standard errors and run metadata as
an :class:`~nisqdiff.circuits.executor.ExpvalResult`. A primitive-based device sends the stage as C PUBs
(each with an (N, n_qubits) parameter array) in one primitive call.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..circuits import ExpvalResult, get_spec
from ..circuits.executor import BaseExecutor
from ..errors import UsageError


class Device(BaseExecutor):
    """Base class of the devices: ``run(ansatz, inputs (C, N, n_qubits), weights (C, n_weights))
    -> ExpvalResult`` (the executor contract, on the inputs' torch device and dtype; not differentiable).

    Subclasses give ``_run`` on CPU tensors (float64 where they like) returning an ExpvalResult;
    ``run`` checks shapes (``ValueError``), detaches, times the call and converts back.
    ``settings()`` is what identifies its results; ``close()`` releases what the device holds (a
    runtime session); a device is a context manager.
    """

    name = "device"
    seed = 0
    calls = 0

    def run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        self._check(ansatz, inputs, weights)
        t0 = time.perf_counter()
        with torch.no_grad():
            res = self._run(ansatz, inputs.detach().cpu(), weights.detach().cpu())
        like = {"device": inputs.device, "dtype": inputs.dtype}
        meta = {**self.settings(), **res.metadata, "seconds": time.perf_counter() - t0}
        return ExpvalResult(res.evs.to(**like), res.stds.to(**like), meta, res.circuit_metadata)

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        """Restart the device's random streams from ``seed`` (a study seeds every batch this way, so a
        resumed batch draws exactly what it drew the first time)."""
        self.seed, self.calls = seed, 0

    @staticmethod
    def _check(ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> None:
        spec = get_spec(ansatz)
        if inputs.dim() == 3 and inputs.shape[1] == 0:
            raise ValueError("a device call needs at least one input row")
        if inputs.dim() != 3 or inputs.shape[2] != spec.n_qubits or weights.shape != (inputs.shape[0], spec.n_weights):
            raise ValueError(
                f"{ansatz} expects inputs (C, N, {spec.n_qubits}) and weights (C, {spec.n_weights}), "
                f"got {tuple(inputs.shape)} and {tuple(weights.shape)}"
            )


MAX_SHOTS = 10_000_000  # IBM's limit of executions per Sampler job; (inputs x shots) draws are held in memory


def check_shots(shots: int) -> int:
    """``shots`` if a standard error can be estimated from it and it fits a job (2 to 10^7), else
    :class:`~nisqdiff.errors.UsageError`."""
    if not 2 <= shots <= MAX_SHOTS:
        raise UsageError(f"--shots must be at least 2 and at most {MAX_SHOTS:,}, got {shots}")
    return shots


def check_seed(seed: int) -> int:
    """``seed`` if it is a valid device seed (0 to 2^63 - 1), else :class:`~nisqdiff.errors.UsageError`."""
    if not 0 <= seed < 2**63:
        raise UsageError(f"--device-seed must be in [0, 2^63), got {seed}")
    return seed


def shot_stderr(z: torch.Tensor, shots: int) -> torch.Tensor:
    """Standard error of a <Z> estimated from ``shots`` +-1 outcomes: sqrt((1 - <Z>^2) / (shots - 1)),
    the sample standard deviation over sqrt(shots)."""
    return ((1 - z.square()).clamp_min(0) / (shots - 1)).sqrt()


def mitigate_readout(evs: torch.Tensor, stds: torch.Tensor, readout) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert each measured qubit's 2x2 assignment matrix on its marginal (exact for independent
    readout errors): p1 = (p1_measured - P(1|0)) / (1 - P(1|0) - P(0|1)). ``readout``: (n_qubits, 2)
    [P(1|0), P(0|1)] per logical qubit (from :func:`nisqdiff.calibration.readout_errors`); evs, stds
    (..., n_qubits). The standard error grows by the same gain. Returns (evs clamped to [-1, 1], stds)."""
    p10, p01 = torch.as_tensor(np.asarray(readout, dtype=np.float64)).to(evs.dtype).unbind(-1)
    gain = (1 - p10 - p01).clamp_min(1e-3)
    p1 = ((1 - evs) / 2 - p10) / gain
    return (1 - 2 * p1).clamp(-1, 1), stds / gain


def call_seed(seed: int, call: int) -> int:
    """A 63-bit simulator seed for call ``call`` of a device seeded with ``seed``. Qiskit Aer seeds
    shot i of a run with seed_simulator + i, so consecutive integers would replay the same noise
    trajectories shifted by one shot in every call; SeedSequence-derived seeds keep calls independent
    (and reproducible)."""
    return int(np.random.SeedSequence([seed, call]).generate_state(1, np.uint64)[0] >> np.uint64(1))


_TRANSPILED: dict = {}  # (transpile_key, ansatz, weights) -> transpiled circuit, shared by all devices
PROGRAMS: dict = {}  # the emulator's compiled programs: key -> (the circuit, kept alive for its id, program)


def clear_transpile_cache() -> None:
    """Forget every transpiled circuit and compiled emulator program of this process (they are kept for
    its lifetime otherwise)."""
    _TRANSPILED.clear()
    PROGRAMS.clear()


def calibrated_transpile_key(snapshot: dict, optimization_level: int) -> tuple:
    """The transpile key of a device that transpiles against a snapshot's calibrated Target (aer-noisy
    and the emulator: the same circuit for the same snapshot and level, whatever the noise scale)."""
    from ..calibration import describe

    return ("target", *describe(snapshot).values(), optimization_level)


class SamplerDevice(Device):
    """A device that runs bound, transpiled Qiskit circuits through a SamplerV2 (Aer or IBM).

    ``_transpile(circuit)`` runs once per ``transpile_key`` (what determines the result besides the
    circuit: backend or calibration and optimization level), ansatz and weights in a process, so the
    devices of a study that transpile alike share the circuits: qiskit's ``transpile`` with the
    subclass's ``transpile_options`` (backend or Target), ``optimization_level`` and
    ``seed_transpiler`` 0, unless a subclass overrides it. Subclasses give
    ``_execute(circuits, values) -> (BitArray per circuit, metadata)`` (one primitive call or job per
    stage) and ``_readout_errors(physical qubits)`` ((n, 2) assignment probabilities to invert, or
    None). ``_run`` maps the measured bits to <Z_q> through each circuit's final layout, with
    standard errors, and applies readout mitigation where asked.
    """

    shots: int
    optimization_level: int
    transpile_options: dict
    transpile_key: tuple
    measure = True  # the circuits end in measurements (False: an estimator measures observables itself)

    def _transpile(self, circuit):
        from qiskit import transpile

        return transpile(circuit, **self.transpile_options, optimization_level=self.optimization_level, seed_transpiler=0)

    def _execute(self, circuits: list, values: list) -> tuple[list, dict]:
        raise NotImplementedError

    def _readout_errors(self, physical: list[int]):
        return None

    def transpiled(self, ansatz: str, weights: torch.Tensor):
        """The circuit with these weights (n_weights,) bound, transpiled for the device (on first use
        only); its ``metadata`` holds its depth and two-qubit gate count."""
        from ..circuits.qiskit_build import bind_weights

        key = (self.transpile_key, ansatz, weights.double().numpy().tobytes())
        if key not in _TRANSPILED:
            _TRANSPILED[key] = with_stats(self._transpile(bind_weights(ansatz, weights.double().numpy(), self.measure)))
        return _TRANSPILED[key]

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        from ..circuits.qiskit_build import input_columns

        t0 = time.perf_counter()
        circuits = [self.transpiled(ansatz, w) for w in weights]
        t1 = time.perf_counter()
        values = [x.double().numpy()[:, input_columns(c)] for c, x in zip(circuits, inputs)]
        bits, meta = self._execute(circuits, values)
        evs, stds = zip(*(self._expvals(circuit, b, inputs.shape[-1]) for circuit, b in zip(circuits, bits)))
        meta = {**meta, "transpile_seconds": t1 - t0}
        return ExpvalResult(torch.stack(evs), torch.stack(stds), meta, [dict(c.metadata) for c in circuits])

    def _expvals(self, circuit, bits, n_qubits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(<Z_q>, standard errors), each (N, n_qubits), from one circuit's measured bits: shot
        estimates, readout-mitigated where :meth:`_readout_errors` gives assignment probabilities."""
        from ..circuits.qiskit_build import z_from_bits

        z = torch.from_numpy(z_from_bits(bits, n_qubits))
        se = shot_stderr(z, self.shots)
        readout = self._readout_errors(physical_qubits(circuit, n_qubits))
        if readout is not None:
            z, se = mitigate_readout(z, se, readout)
        return z, se


def physical_qubits(circuit, n_qubits: int) -> list[int]:
    """The physical qubit of each logical qubit of a transpiled circuit (its final layout)."""
    return circuit.layout.final_index_layout() if circuit.layout else list(range(n_qubits))


def with_stats(circuit):
    """``circuit`` (transpiled) with its depth and two-qubit gate count in ``circuit.metadata``, which
    devices copy into each result's circuit metadata."""
    circuit.metadata = {
        **(circuit.metadata or {}),
        "depth": circuit.depth(),
        "two_qubit_gates": sum(1 for inst in circuit.data if inst.operation.num_qubits == 2),
    }
    return circuit
