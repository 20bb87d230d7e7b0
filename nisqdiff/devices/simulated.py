"""Simulated devices: ``depolarized``, ``shots``, ``aer`` and ``aer-noisy``.

(``noiseless`` is the exact training simulator itself, :class:`~nisqdiff.circuits.ExactSimulator`.)
``depolarized`` is the infinite-noise limit (every <Z> = 0), a study's bound on what the circuits can
cost; ``shots`` measures the ideal
state ``shots`` times (bitstrings drawn from its Born probabilities, <Z_q> from the marginal of qubit
q with its standard error); ``aer`` runs the Qiskit circuit, transpiled once per set of weights, on
Qiskit Aer through a SamplerV2 without noise (a cross-check of the whole Qiskit path); ``aer-noisy``
adds a noise model from a calibration snapshot (:mod:`nisqdiff.calibration`) and runs on Aer's own
SamplerV2.
"""

from __future__ import annotations

import time

import torch

from ..circuits import ExpvalResult, probabilities
from ..circuits.simulator import _z_signs
from ..errors import UsageError
from .base import Device, SamplerDevice, calibrated_transpile_key, call_seed, check_shots, shot_stderr


class DepolarizedDevice(Device):
    """The infinite-noise limit: every circuit ends in the maximally mixed state, so every <Z_q> is 0
    (exactly, standard error 0). A study's bound on how much a model can lose through its circuits."""

    name = "depolarized"

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        z = torch.zeros_like(inputs)
        return ExpvalResult(z, torch.zeros_like(z))


class ShotsDevice(Device):
    """The ideal circuit measured ``shots`` times per input.

    Bitstrings are drawn from the exact Born probabilities (:func:`nisqdiff.circuits.probabilities`,
    the chain contraction for HQConv; computed in float32, whose rounding, about 1e-7 per
    probability, is far below any shot noise) by inverse-CDF sampling from a
    generator seeded with ``seed``; <Z_q> = 1 - 2 * (fraction of shots with qubit q = 1), an unbiased
    estimate, with standard error from :func:`shot_stderr`.
    """

    name = "shots"

    def __init__(self, shots: int = 1024, seed: int = 0):
        self.shots, self.seed = check_shots(shots), seed
        self.generator = torch.Generator().manual_seed(seed)

    def settings(self) -> dict:
        return {"device": self.name, "shots": self.shots, "seed": self.seed}

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        n = inputs.shape[-1]
        evs = []
        stage = probabilities(ansatz, inputs.float(), weights.float())  # (C, N, 2^n): every circuit at once
        for x, probs in zip(inputs, stage):  # the shots circuit by circuit: one random stream, in circuit order
            cdf = probs.double().cumsum(1)
            u = torch.rand(x.shape[0], self.shots, generator=self.generator, dtype=cdf.dtype) * cdf[:, -1:]
            draws = torch.searchsorted(cdf, u).clamp_max(2**n - 1)  # (N, shots) basis-state indices
            counts = torch.zeros_like(cdf).scatter_add_(1, draws, torch.ones_like(u))  # (N, 2^n)
            evs.append((counts @ _z_signs(n, "cpu", counts.dtype)) / self.shots)  # marginal of each qubit
        z = torch.stack(evs)
        return ExpvalResult(z, shot_stderr(z, self.shots))


class AerDevice(SamplerDevice):
    """Qiskit Aer (``AerSimulator``) through a SamplerV2 primitive, no noise.

    The circuit of :mod:`nisqdiff.circuits.qiskit_build` gets the trained weights bound and is
    transpiled once (cached per ansatz and weights; ``optimization_level``, ``seed_transpiler`` 0);
    a stage of C circuits is one ``SamplerV2.run`` with C PUBs ``(circuit, inputs (N, n_qubits))`` of
    ``shots`` shots, seeded by :func:`call_seed` (``seed``, call number). <Z_q> comes from the measured
    bits with its standard error. ``sampler``: "probabilities" (default) is
    :class:`~nisqdiff.devices.sampler.AerProbabilitySampler` (Aer simulates each input once, the shots
    are drawn from its Born probabilities: about 3x faster at 1,024 shots), "aer" is
    ``qiskit_aer.primitives.SamplerV2`` (Aer draws and returns every shot itself). Both draw i.i.d.
    bit strings from the same distribution. ``ValueError`` for an unknown sampler.
    """

    name = "aer"
    SAMPLERS = ("probabilities", "aer")

    def __init__(
        self,
        shots: int = 1024,
        seed: int = 0,
        optimization_level: int = 1,
        backend=None,
        transpile_options=None,
        sampler: str = "probabilities",
    ):
        from qiskit_aer import AerSimulator

        if sampler not in self.SAMPLERS:
            raise UsageError(f"unknown sampler '{sampler}'; valid: {', '.join(self.SAMPLERS)}")
        self.shots, self.seed, self.optimization_level = check_shots(shots), seed, optimization_level
        # max_parallel_experiments=0: Aer runs the N parameter sets of a PUB in parallel (1.45x here)
        self.backend = backend or AerSimulator(max_parallel_experiments=0)
        self.transpile_options = transpile_options or {"backend": self.backend}
        self.transpile_key = ("backend", self.backend.name, optimization_level)
        self.sampler = sampler
        self.calls = 0

    def settings(self) -> dict:
        return {
            "device": self.name,
            "shots": self.shots,
            "seed": self.seed,
            "optimization_level": self.optimization_level,
            "sampler": self.sampler,
        }

    def probe_seconds(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> float:
        """Seconds one execution takes: the first circuit of a stage (weights (C, n_weights)) on its first
        input (inputs (C, N, n_qubits)), run once on the simulator; the device's random streams are left
        as they were, so the run that follows draws what it would have drawn."""
        from ..circuits.qiskit_build import input_columns

        circuit = self.transpiled(ansatz, weights[0])
        values = [inputs[0, :1].double().numpy()[:, input_columns(circuit)]]
        calls, t0 = self.calls, time.perf_counter()
        self._execute([circuit], values)
        self.calls = calls
        return time.perf_counter() - t0

    def _execute(self, circuits: list, values: list) -> tuple[list, dict]:
        from qiskit_aer.primitives import SamplerV2

        from .sampler import AerProbabilitySampler

        seed = call_seed(self.seed, self.calls)
        self.calls += 1
        if self.sampler == "probabilities":
            sampler = AerProbabilitySampler(self.backend, seed=seed, default_shots=self.shots)
        else:
            sampler = SamplerV2.from_backend(self.backend, seed=seed, default_shots=self.shots)
        results = sampler.run(list(zip(circuits, values)), shots=self.shots).result()
        meta = {"backend": self.backend.name, "pubs": len(circuits)}
        if "simulator_seconds" in results.metadata:
            meta["simulator_seconds"] = results.metadata["simulator_seconds"]
        return [r.data.meas for r in results], meta


class AerNoisyDevice(AerDevice):
    """Qiskit Aer with a noise model from a calibration snapshot (:mod:`nisqdiff.calibration`).

    Circuits are transpiled once per set of weights to the device's basis gates and coupling map
    against its calibrated Target (unscaled), at ``optimization_level`` 3, whose VF2 layout passes
    score placements by the calibrated error rates; the simulator uses the noise model at
    ``noise_scale`` (0 ideal, 1 the calibration, 2 twice the error rates). ``method`` "statevector"
    runs one noise trajectory per shot (cost grows with shots), "density_matrix" evolves the exact
    mixed state once and samples the shots from it (cost independent of shots, 268 MB for 12
    qubits); both draw i.i.d. bitstrings from the same noisy distribution. "auto" takes the density
    matrix from ``DENSITY_MATRIX_SHOTS`` shots on, where it is the faster one (docs/performance.md). ``mitigate_readout`` inverts each measured qubit's 2x2
    assignment matrix (the calibration's P(1|0), P(0|1) at the same scale), see
    :func:`~nisqdiff.devices.base.mitigate_readout`.
    """

    name = "aer-noisy"
    METHODS = ("auto", "statevector", "density_matrix")
    DENSITY_MATRIX_SHOTS = 1024

    def __init__(
        self,
        calibration: str,
        noise_scale: float = 1.0,
        shots: int = 1024,
        seed: int = 0,
        mitigate_readout: bool = False,
        optimization_level: int = 3,
        method: str = "auto",
    ):
        from qiskit_aer import AerSimulator

        from ..calibration import check_noise_scale, load_calibration, noise_model, target

        if method not in self.METHODS:
            raise UsageError(f"unknown Aer method '{method}'; valid: {', '.join(self.METHODS)}")
        check_noise_scale(noise_scale)
        if method == "auto":
            method = "density_matrix" if shots >= self.DENSITY_MATRIX_SHOTS else "statevector"
        self.snapshot = load_calibration(calibration)
        self.noise_scale, self.mitigate_readout, self.method = noise_scale, mitigate_readout, method
        noise = noise_model(self.snapshot, noise_scale)
        backend = AerSimulator(noise_model=noise, method=method, max_parallel_experiments=0)
        # Aer's own SamplerV2: with trajectories the noise is drawn per shot
        super().__init__(shots, seed, optimization_level, backend, {"target": target(self.snapshot, 1.0)}, sampler="aer")
        self.transpile_key = calibrated_transpile_key(self.snapshot, optimization_level)

    def settings(self) -> dict:
        from ..calibration import describe

        return {
            **super().settings(),
            **describe(self.snapshot),
            "noise_scale": self.noise_scale,
            "mitigate_readout": self.mitigate_readout,
            "method": self.method,
        }

    def _readout_errors(self, physical: list[int]):
        from ..calibration import readout_errors

        return readout_errors(self.snapshot, physical, self.noise_scale) if self.mitigate_readout and self.noise_scale > 0 else None
