"""Devices that execute the model's circuits, and the adapter that puts one behind a model.

A device takes one circuit (ansatz and its trained weights) and a batch of inputs (N, n_qubits) and
returns <Z_q> (N, n_qubits) with standard errors (zero where exact) and run metadata. Sampling
calls every circuit of a denoising step once with all images of the batch (one call per circuit
stage: what a primitive would receive as one PUB with an (N, n_params) parameter array).

Devices here: ``noiseless`` (exact expectation values, the training simulator), ``shots`` (the
ideal state measured ``shots`` times: bitstrings drawn from its Born probabilities, <Z_q> from the
marginal of qubit q with its standard error) and ``aer`` (the Qiskit circuit, transpiled once per
set of weights, run on Qiskit Aer's SamplerV2 without noise: a cross-check of the whole Qiskit path).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .circuits import get_spec, simulate
from .circuits.simulator import _z_signs, probabilities


@dataclass
class DeviceResult:
    """<Z_q> (N, n_qubits), its standard error (N, n_qubits) and the run's metadata."""

    expval: torch.Tensor
    stderr: torch.Tensor
    metadata: dict = field(default_factory=dict)


class Device:
    """Base class: ``run(ansatz, weights (n_weights,), inputs (N, n_qubits)) -> DeviceResult``."""

    name = "device"

    def settings(self) -> dict:
        """What identifies this device's results (recorded next to the images)."""
        return {"device": self.name}

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        raise NotImplementedError

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


class NoiselessDevice(Device):
    """Exact <Z_q> from the statevector/chain simulator; standard errors are zero."""

    name = "noiseless"

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        self._check(ansatz, weights, inputs)
        t0 = time.perf_counter()
        with torch.no_grad():
            z = simulate(ansatz, inputs.unsqueeze(0), weights.unsqueeze(0)).squeeze(0)
        return DeviceResult(z, torch.zeros_like(z), {**self.settings(), "seconds": time.perf_counter() - t0})


class ShotsDevice(Device):
    """The ideal circuit measured ``shots`` times per input.

    Bitstrings are drawn from the exact Born probabilities (multinomial, from a generator seeded
    with ``seed``); <Z_q> = 1 - 2 * (fraction of shots with qubit q = 1), an unbiased estimate, with
    standard error from :func:`shot_stderr`.
    """

    name = "shots"

    def __init__(self, shots: int, seed: int = 0):
        self.shots, self.seed = check_shots(shots), seed
        self.generator = torch.Generator().manual_seed(seed)

    def settings(self) -> dict:
        return {"device": self.name, "shots": self.shots, "seed": self.seed}

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        self._check(ansatz, weights, inputs)
        t0 = time.perf_counter()
        n = inputs.shape[1]
        with torch.no_grad():
            probs = probabilities(ansatz, inputs.double().unsqueeze(0), weights.double().unsqueeze(0)).squeeze(0)
            draws = torch.multinomial(probs.clamp_min(0), self.shots, replacement=True, generator=self.generator)
            counts = torch.zeros_like(probs).scatter_add_(1, draws, torch.ones_like(draws, dtype=probs.dtype))
            z = (counts @ _z_signs(n, "cpu", probs.dtype)) / self.shots
            stderr = shot_stderr(z, self.shots)
        meta = {**self.settings(), "seconds": time.perf_counter() - t0}
        return DeviceResult(z.to(inputs.dtype), stderr.to(inputs.dtype), meta)


class AerDevice(Device):
    """Qiskit Aer (``AerSimulator`` through ``qiskit_aer.primitives.SamplerV2``), no noise.

    The circuit of :mod:`nisqdiff.circuits.qiskit_build` gets the trained weights bound and is
    transpiled once (cached per ansatz and weights; ``optimization_level``, ``seed_transpiler`` 0);
    each call is one PUB ``(circuit, inputs (N, n_qubits))`` with ``shots`` shots. <Z_q> comes from the
    measured bits with its standard error.
    """

    name = "aer"

    def __init__(self, shots: int = 1024, seed: int = 0, optimization_level: int = 1, backend=None, transpile_options=None):
        from qiskit_aer import AerSimulator
        from qiskit_aer.primitives import SamplerV2

        self.shots, self.seed, self.optimization_level = check_shots(shots), seed, optimization_level
        # max_parallel_experiments=0: Aer runs the N parameter sets of a PUB in parallel (1.45x here)
        self.backend = backend or AerSimulator(seed_simulator=seed, max_parallel_experiments=0)
        self.transpile_options = transpile_options or {"backend": self.backend}
        self.sampler = SamplerV2.from_backend(self.backend, seed=seed, default_shots=shots)
        self._cache: dict = {}

    def settings(self) -> dict:
        return {"device": self.name, "shots": self.shots, "seed": self.seed, "optimization_level": self.optimization_level}

    def transpiled(self, ansatz: str, weights: torch.Tensor):
        """The bound, transpiled circuit for these weights (built and transpiled on first use only)."""
        from qiskit import transpile

        from .circuits.qiskit_build import bind_weights

        key = (ansatz, weights.double().numpy().tobytes())
        if key not in self._cache:
            circuit = bind_weights(ansatz, weights.double().numpy())
            self._cache[key] = transpile(
                circuit, **self.transpile_options, optimization_level=self.optimization_level, seed_transpiler=0
            )
        return self._cache[key]

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        from .circuits.qiskit_build import input_columns, z_from_bits

        self._check(ansatz, weights, inputs)
        t0 = time.perf_counter()
        circuit = self.transpiled(ansatz, weights)
        t1 = time.perf_counter()
        values = inputs.double().numpy()[:, input_columns(circuit)]
        result = self.sampler.run([(circuit, values)], shots=self.shots).result()[0]
        z = torch.from_numpy(z_from_bits(result.data.meas.array, inputs.shape[1]))
        meta = {
            **self.settings(),
            "backend": self.backend.name,
            "seconds": time.perf_counter() - t0,
            "transpile_seconds": t1 - t0,
            "depth": circuit.depth(),
            "two_qubit_gates": sum(1 for inst in circuit.data if inst.operation.num_qubits == 2),
        }
        return DeviceResult(z.to(inputs.dtype), shot_stderr(z, self.shots).to(inputs.dtype), meta)


class AerNoisyDevice(AerDevice):
    """Qiskit Aer with a noise model from a calibration snapshot (:mod:`nisqdiff.calibration`).

    Circuits are transpiled once per set of weights to the device's basis gates and coupling map
    against its calibrated Target (unscaled), at ``optimization_level`` 3, whose VF2 layout passes
    score placements by the calibrated error rates; the simulator (statevector trajectories, one
    noise realisation per shot) uses the noise model at ``noise_scale`` (0 ideal, 1 the
    calibration, 2 twice the error rates). ``mitigate_readout`` inverts each measured qubit's 2x2
    assignment matrix (the calibration's P(1|0), P(0|1) at the same scale) on its marginal:
    p1 = (p1_measured - P(1|0)) / (1 - P(1|0) - P(0|1)), exact for independent readout errors.
    """

    name = "aer-noisy"

    def __init__(
        self, calibration: str, noise_scale: float = 1.0, shots: int = 1024, seed: int = 0, mitigate_readout: bool = False
    ):
        from qiskit_aer import AerSimulator

        from .calibration import load_calibration, noise_model, target

        self.snapshot = load_calibration(calibration)
        self.noise_scale, self.mitigate_readout = noise_scale, mitigate_readout
        noise = noise_model(self.snapshot, noise_scale)
        backend = AerSimulator(noise_model=noise, method="statevector", seed_simulator=seed, max_parallel_experiments=0)
        super().__init__(shots, seed, 3, backend, {"target": target(self.snapshot, 1.0)})

    def settings(self) -> dict:
        return {
            **super().settings(),
            "calibration": self.snapshot["name"],
            "calibration_date": self.snapshot["calibration_date"],
            "noise_scale": self.noise_scale,
            "mitigate_readout": self.mitigate_readout,
        }

    def run(self, ansatz: str, weights: torch.Tensor, inputs: torch.Tensor) -> DeviceResult:
        res = super().run(ansatz, weights, inputs)
        if not self.mitigate_readout or self.noise_scale == 0:
            return res
        from .calibration import readout_probs

        physical = self.transpiled(ansatz, weights).layout.final_index_layout()
        e10, e01 = torch.tensor(
            [readout_probs(self.snapshot["qubits"][p], self.noise_scale) for p in physical], dtype=res.expval.dtype
        ).unbind(-1)
        gain = (1 - e10 - e01).clamp_min(1e-3)
        p1 = ((1 - res.expval) / 2 - e10) / gain
        return DeviceResult((1 - 2 * p1).clamp(-1, 1), res.stderr / gain, res.metadata)


DEVICES = {
    "noiseless": "exact <Z> from the statevector simulator (the training simulator); needs nothing",
    "shots": "ideal circuit, <Z> estimated from --shots N sampled bitstrings (with standard errors); needs --shots",
    "aer": "Qiskit Aer SamplerV2 on the transpiled Qiskit circuit, no noise; --shots N (default 1024)",
    "aer-noisy": "Qiskit Aer with a noise model from a calibration snapshot; --calibration NAME "
    "(see `nisqdiff calibration list`), --noise-scale X (default 1), --shots N",
}


def make_device(
    name: str,
    shots: int | None = None,
    seed: int = 0,
    calibration: str | None = None,
    noise_scale: float = 1.0,
    mitigate_readout: bool = False,
) -> Device:
    """Build device ``name``; ``ValueError`` naming the valid devices, or a missing/invalid option."""
    if mitigate_readout and name != "aer-noisy":
        raise ValueError(f"--mitigate-readout applies to aer-noisy, not '{name}'")
    if name == "noiseless":
        return NoiselessDevice()
    if name == "shots":
        if shots is None:
            raise ValueError("device 'shots' needs --shots N (e.g. --shots 1024)")
        return ShotsDevice(shots, seed)
    if name == "aer":
        return AerDevice(shots if shots is not None else 1024, seed)
    if name == "aer-noisy":
        if calibration is None:
            from .calibration import list_calibrations

            raise ValueError(f"device 'aer-noisy' needs --calibration NAME; built-in: {', '.join(list_calibrations())}")
        return AerNoisyDevice(calibration, noise_scale, shots if shots is not None else 1024, seed, mitigate_readout)
    raise ValueError(f"unknown device '{name}'; valid: {', '.join(DEVICES)}")


class DeviceExecutor:
    """Puts a :class:`Device` behind a model (``UNet.set_executor``): the executor call
    ``(ansatz, inputs (C, B, n), weights (C, n_weights)) -> <Z> (C, B, n)`` becomes one device call
    per circuit with all B inputs. Not differentiable (sampling only). Counts calls, circuit
    executions and seconds for the run's metadata."""

    def __init__(self, device: Device):
        self.device = device
        self.calls = 0
        self.executions = 0
        self.seconds = 0.0
        self.max_stderr = 0.0

    def __call__(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        outs = []
        for c in range(inputs.shape[0]):
            res = self.device.run(ansatz, weights[c].detach().cpu(), inputs[c].detach().cpu())
            outs.append(res.expval)
            self.calls += 1
            self.executions += inputs.shape[1]
            self.seconds += res.metadata.get("seconds", 0.0)
            self.max_stderr = max(self.max_stderr, float(res.stderr.max()) if res.stderr.numel() else 0.0)
        return torch.stack(outs).to(device=inputs.device, dtype=inputs.dtype)

    def summary(self) -> dict:
        return {
            **self.device.settings(),
            "device_calls": self.calls,
            "circuit_executions": self.executions,
            "device_seconds": round(self.seconds, 3),
            "max_stderr": self.max_stderr,
        }
