"""``emulator``: the fast noisy device, batched quantum trajectories in torch.

It computes what ``aer-noisy`` computes for the same calibration: the circuit is transpiled exactly as
``aer-noisy`` transpiles it (same Target, optimization level and seed), every gate gets the same Aer
``QuantumError`` (``basic_device_gate_errors`` at the same ``noise_scale``) and every measured qubit the
same readout error, and :mod:`nisqdiff.circuits.trajectories` unravels the noisy evolution into pure-
state trajectories on the 12 active qubits. Each input runs ``trajectories`` trajectories; ``shots``
shots per input are split evenly over them (one trajectory per shot when trajectories == shots, which
is what hardware does). With fewer trajectories than shots the estimate stays unbiased but carries more
trajectory noise than the same shots on hardware; its standard error (the spread of the per-
trajectory estimates) includes that noise, so it is honest either way. ``shots=None`` averages the exact
readout-corrupted marginals of the trajectories (the noisy expectation value, up to trajectory noise).

Mitigation options: ``mitigate_readout`` inverts each qubit's assignment matrix (as ``aer-noisy``);
``zne`` = noise-scale factors (e.g. (1, 2, 3)): the circuit runs at ``noise_scale * f`` for each
factor (each with ``shots`` shots) and <Z> is Richardson-extrapolated to zero noise, its standard error
propagated. Runs on CPU or CUDA (``torch_device``; the CUDA path has not been run on a GPU yet).
"""

from __future__ import annotations


import torch

from ..circuits import ExpvalResult
from ..circuits.trajectories import Program, compile_program, run_program
from ..errors import UsageError
from .base import SamplerDevice, calibrated_transpile_key, call_seed, check_shots, mitigate_readout


def richardson_weights(factors: tuple[float, ...]) -> list[float]:
    """Weights c_i with sum_i c_i f(x_i) the polynomial extrapolation of f to 0 through the points
    (x_i = ``factors``): c_i = prod_{j != i} x_j / (x_j - x_i). :class:`~nisqdiff.errors.UsageError`
    for fewer than two or repeated factors."""
    if len(factors) < 2 or len(set(factors)) != len(factors):
        raise UsageError(f"ZNE needs at least two distinct noise factors, got {factors}")
    out = []
    for i, xi in enumerate(factors):
        c = 1.0
        for j, xj in enumerate(factors):
            if j != i:
                c *= xj / (xj - xi)
        out.append(c)
    return out


class EmulatorDevice(SamplerDevice):
    """Noisy emulation of a calibrated device by batched quantum trajectories (see the module doc)."""

    name = "emulator"

    def __init__(
        self,
        calibration: str,
        noise_scale: float = 1.0,
        shots: int | None = 1024,
        trajectories: int = 32,
        seed: int = 0,
        mitigate_readout: bool = False,
        zne: tuple[float, ...] | None = None,
        optimization_level: int = 3,
        torch_device: str = "cpu",
    ):
        from ..calibration import check_noise_scale, load_calibration, target

        check_noise_scale(noise_scale)
        if trajectories < 2:
            raise UsageError(f"--trajectories must be at least 2 (their spread is the standard error), got {trajectories}")
        self.snapshot = load_calibration(calibration)
        self.transpile_options = {"target": target(self.snapshot, 1.0)}  # what aer-noisy transpiles against
        self.transpile_key = calibrated_transpile_key(self.snapshot, optimization_level)
        self.shots = None if shots is None else check_shots(shots)
        if shots is not None:
            trajectories = min(trajectories, shots)
            if shots % trajectories:
                raise UsageError(f"--shots ({shots}) must be a multiple of the trajectories ({trajectories})")
        self.trajectories, self.seed, self.noise_scale = trajectories, seed, noise_scale
        self.mitigate_readout, self.optimization_level, self.torch_device = mitigate_readout, optimization_level, torch_device
        self.zne = tuple(zne) if zne else None
        self.zne_weights = richardson_weights(self.zne) if self.zne else None
        self.calls = 0
        self._programs: dict = {}

    def settings(self) -> dict:
        from ..calibration import describe

        out = {
            "device": self.name,
            "shots": self.shots,
            "trajectories": self.trajectories,
            "seed": self.seed,
            **describe(self.snapshot),
            "noise_scale": self.noise_scale,
            "mitigate_readout": self.mitigate_readout,
            "optimization_level": self.optimization_level,
        }
        return out | ({"zne_factors": list(self.zne)} if self.zne else {})

    def program(self, circuit, scale: float) -> Program:
        """The compiled noisy program of a transpiled circuit at noise scale ``scale`` (cached)."""
        key = (id(circuit), scale)
        if key not in self._programs:
            self._programs[key] = emulator_program(circuit, self.snapshot, scale).to(self.torch_device)
        return self._programs[key]

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        circuits = [self.transpiled(ansatz, w) for w in weights]
        gen = torch.Generator(self.torch_device).manual_seed(call_seed(self.seed, self.calls))
        self.calls += 1
        factors = self.zne or (1.0,)
        evs, stds, circuit_meta = [], [], []
        for circuit, x in zip(circuits, inputs):
            zs, ses = [], []
            for f in factors:  # readout mitigation at each factor's own scale, then the extrapolation
                prog = self.program(circuit, self.noise_scale * f)
                z, se = run_program(prog, x.to(self.torch_device), self.trajectories, self.shots, gen)
                z, se = z.cpu().double(), se.cpu().double()
                if self.mitigate_readout and self.noise_scale > 0:
                    z, se = mitigate_readout(z, se, prog.readout)
                zs.append(z)
                ses.append(se)
            if self.zne:
                z = sum(c * zi for c, zi in zip(self.zne_weights, zs)).clamp(-1, 1)
                se = sum((c * si).square() for c, si in zip(self.zne_weights, ses)).sqrt()
            else:
                z, se = zs[0], ses[0]
            evs.append(z)
            stds.append(se)
            circuit_meta.append({**circuit.metadata, **prog.stats})
        return ExpvalResult(torch.stack(evs), torch.stack(stds), {"readout_mitigated": self.mitigate_readout}, circuit_meta)


def emulator_program(circuit, snapshot: dict, scale: float) -> Program:
    """Compile a transpiled circuit with the snapshot's Aer gate errors and readout errors at ``scale``
    (exactly the errors of :func:`nisqdiff.calibration.noise_model`)."""
    from ..calibration import gate_errors, readout_errors

    errors = {(name, tuple(qubits)): err for name, qubits, err in gate_errors(snapshot, scale)}
    physical = circuit.layout.final_index_layout()
    readout = dict(zip(physical, readout_errors(snapshot, physical, scale))) if scale > 0 else {}
    return compile_program(circuit, errors, readout)


def aer_exact_expval(circuit, snapshot: dict, scale: float, inputs: torch.Tensor, threads: int = 0) -> torch.Tensor:
    """The reference the emulator is validated against: <Z_q> (N, n_clbits) of a transpiled, measured
    circuit from Qiskit Aer's density-matrix method with :func:`~nisqdiff.calibration.noise_model` at
    ``scale``; the readout errors are applied exactly to each qubit's marginal, so there is no shot noise.
    ``inputs`` (N, n_inputs) radians; one Aer run per input (``threads`` 0: Aer's default)."""
    import numpy as np
    from qiskit_aer import AerSimulator

    from ..calibration import noise_model, readout_errors
    from ..circuits.qiskit_build import input_columns

    sim = AerSimulator(method="density_matrix", noise_model=noise_model(snapshot, scale), max_parallel_threads=threads)
    qc = circuit.remove_final_measurements(inplace=False)
    phys = circuit.layout.final_index_layout()
    qc.save_probabilities(phys)
    cols = input_columns(qc)
    ro = np.array(readout_errors(snapshot, phys, scale)) if scale else np.zeros((len(phys), 2))
    bits = (np.arange(2 ** len(phys))[:, None] >> np.arange(len(phys))[None, :]) & 1  # qubit i = bit i
    out = []
    for row in inputs.double().numpy():
        p = np.asarray(sim.run(qc.assign_parameters(row[cols])).result().data()["probabilities"])
        p1 = p @ bits
        out.append(1 - 2 * (p1 * (1 - ro[:, 1]) + (1 - p1) * ro[:, 0]))
    return torch.tensor(np.array(out))
