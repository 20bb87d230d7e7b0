"""``emulator``: the fast noisy device, exact or by batched quantum trajectories, in torch.

It computes what ``aer-noisy`` computes for the same calibration: the circuit is transpiled exactly as
``aer-noisy`` transpiles it (same Target, optimization level and seed), every gate gets the same Aer
``QuantumError`` (``basic_device_gate_errors`` at the same ``noise_scale``) and every measured qubit the
same readout error, compiled once per circuit and noise scale by
:func:`~nisqdiff.circuits.trajectories.compile_program`. Two methods evaluate it:

* ``exact`` (:mod:`nisqdiff.circuits.heisenberg`): each qubit's noisy <Z> as an exact polynomial of the
  inputs, computed once per circuit (seconds) and evaluated for any number of inputs (well under a
  millisecond each): Aer's density-matrix value. With ``shots`` S, each qubit's count of ones is drawn
  from Binomial(S, p1) of its exact readout-corrupted marginal: each <Z_q> estimate has exactly the
  distribution it has from S shots, but the qubits' estimates are independent, whereas one shot record
  correlates them (a joint bit string per shot); use ``trajectories`` for full bit-string statistics.
* ``trajectories`` (:mod:`nisqdiff.circuits.trajectories`): each input runs ``trajectories`` pure-state
  trajectories; ``shots`` shots per input are split evenly over them (one trajectory per shot when
  trajectories == shots, as on hardware). Unbiased; its standard error (the spread of the per-trajectory
  estimates) includes the trajectory noise. ``shots=None`` averages the exact readout-corrupted marginals.

Mitigation: ``mitigate_readout`` inverts each qubit's assignment matrix (as ``aer-noisy``); ``zne`` =
noise factors (e.g. (1, 2, 3)): the circuit runs at ``noise_scale * f`` for each factor (each with
``shots`` shots), readout-mitigated at each factor if asked, and is extrapolated to zero noise by
``zne_extrapolator`` (:mod:`.zne`), its standard error propagated. On the exact method without shots
both are exact in expectation. Runs on CPU or CUDA (``torch_device``; not yet run on a GPU).
"""

from __future__ import annotations

import time

import torch

from ..circuits import ExpvalResult
from ..circuits.heisenberg import ExactProgram, compile_exact
from ..circuits.trajectories import Program, compile_program, run_program
from ..errors import UsageError
from .base import PROGRAMS, SamplerDevice, calibrated_transpile_key, call_seed, check_shots, mitigate_readout, shot_stderr
from .zne import check_factors, degree, extrapolate

METHODS = ("exact", "trajectories")


def check_method(method: str) -> str:
    """``method`` if it is an emulator method, else :class:`~nisqdiff.errors.UsageError` listing them."""
    if method not in METHODS:
        raise UsageError(f"unknown emulator method '{method}'; valid: {', '.join(METHODS)}")
    return method


class EmulatorDevice(SamplerDevice):
    """Noisy emulation of a calibrated device, exact or by quantum trajectories (see the module doc).
    :class:`~nisqdiff.errors.UsageError` for an unknown method, trajectories below 2, shots that the
    trajectories do not divide, bad ZNE factors or extrapolator."""

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
        zne_extrapolator: str = "richardson",
        method: str = "trajectories",
        optimization_level: int = 3,
        torch_device: str = "cpu",
    ):
        from ..calibration import MAX_NOISE_SCALE, check_noise_scale, load_calibration, target

        check_noise_scale(noise_scale)
        self.method = check_method(method)
        if method == "trajectories" and trajectories < 2:
            raise UsageError(f"--trajectories must be at least 2 (their spread is the standard error), got {trajectories}")
        self.zne = check_factors(zne) if zne else None
        self.zne_extrapolator = zne_extrapolator
        degree(zne_extrapolator, len(self.zne) if self.zne else 8)  # a known name that the factors can fit
        if self.zne:
            if noise_scale * max(self.zne) > MAX_NOISE_SCALE:
                raise UsageError(f"--noise-scale {noise_scale} times the largest ZNE factor {max(self.zne)} exceeds "
                                 f"the maximum noise scale {MAX_NOISE_SCALE:g}; lower one of them")  # fmt: skip
        self.snapshot = load_calibration(calibration)
        self.transpile_options = {"target": target(self.snapshot, 1.0)}  # what aer-noisy transpiles against
        self.transpile_key = calibrated_transpile_key(self.snapshot, optimization_level)
        self.shots = None if shots is None else check_shots(shots)
        if shots is not None and method == "trajectories":
            trajectories = min(trajectories, shots)
            if shots % trajectories:
                raise UsageError(f"--shots ({shots}) must be a multiple of the trajectories ({trajectories})")
        self.trajectories = trajectories if method == "trajectories" else None
        self.seed, self.noise_scale = seed, noise_scale
        self.mitigate_readout, self.optimization_level, self.torch_device = mitigate_readout, optimization_level, torch_device
        self.calls = 0
        self.compile_seconds = 0.0

    def settings(self) -> dict:
        from ..calibration import describe

        out = {
            "device": self.name,
            "method": self.method,
            "shots": self.shots,
            "trajectories": self.trajectories,
            "seed": self.seed,
            **describe(self.snapshot),
            "noise_scale": self.noise_scale,
            "mitigate_readout": self.mitigate_readout,
            "optimization_level": self.optimization_level,
        }
        if self.method == "exact":
            del out["trajectories"]
        return out | ({"zne_factors": list(self.zne), "zne_extrapolator": self.zne_extrapolator} if self.zne else {})

    def program(self, circuit, scale: float) -> Program | ExactProgram:
        """The compiled noisy program of a transpiled circuit at noise scale ``scale`` (for the exact
        method its :class:`~nisqdiff.circuits.heisenberg.ExactProgram`), cached in the process for every
        emulator of the same calibration: a study's settings share what they have in common."""
        from ..calibration import describe

        key = (id(circuit), tuple(describe(self.snapshot).values()), scale, self.method, str(self.torch_device))
        if key not in PROGRAMS:
            t0 = time.perf_counter()
            prog = emulator_program(circuit, self.snapshot, scale)
            prog = compile_exact(prog, self.torch_device) if self.method == "exact" else prog.to(self.torch_device)
            PROGRAMS[key] = (circuit, prog)  # the circuit stays alive, so its id is not reused
            self.compile_seconds += time.perf_counter() - t0
        return PROGRAMS[key][1]

    def _estimate(self, prog, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(<Z>, standard error) (N, n_clbits) float64 on CPU of one circuit at one noise scale."""
        if self.method == "trajectories":
            z, se = run_program(prog, x.to(self.torch_device), self.trajectories, self.shots, gen)
            return z.cpu().double(), se.cpu().double()
        z = prog.expval(x)
        if self.shots is None:
            return z.cpu(), torch.zeros_like(z, device="cpu")
        p1 = ((1 - z) / 2).clamp(0, 1)
        ones = torch.binomial(torch.full_like(p1, float(self.shots)), p1, generator=gen)
        z = (1 - 2 * ones / self.shots).cpu()
        return z, shot_stderr(z, self.shots)

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        self.compile_seconds = 0.0  # one-off work of this call (compiling programs), for cost estimates
        circuits = [self.transpiled(ansatz, w) for w in weights]
        gen = torch.Generator(self.torch_device).manual_seed(call_seed(self.seed, self.calls))
        self.calls += 1
        factors = self.zne or (1.0,)
        evs, stds, circuit_meta, fallbacks = [], [], [], 0
        for circuit, x in zip(circuits, inputs):
            zs, ses = [], []
            for f in factors:  # readout mitigation at each factor's own scale, then the extrapolation
                prog = self.program(circuit, self.noise_scale * f)
                z, se = self._estimate(prog, x, gen)
                if self.mitigate_readout and self.noise_scale > 0:
                    z, se = mitigate_readout(z, se, prog.readout)
                zs.append(z)
                ses.append(se)
            if self.zne:
                z, se, fell_back = extrapolate(self.zne, zs, ses, self.zne_extrapolator)
                fallbacks += fell_back
            else:
                z, se = zs[0], ses[0]
            evs.append(z)
            stds.append(se)
            circuit_meta.append({**circuit.metadata, **prog.stats})
        meta = {"readout_mitigated": self.mitigate_readout, "compile_seconds": self.compile_seconds}
        meta |= {"zne_fallbacks": fallbacks} if self.zne else {}
        return ExpvalResult(torch.stack(evs), torch.stack(stds), meta, circuit_meta)


def emulator_program(circuit, snapshot: dict, scale: float) -> Program:
    """Compile a transpiled circuit with the snapshot's Aer gate errors and readout errors at ``scale``
    (exactly the errors of :func:`nisqdiff.calibration.noise_model`, built for the circuit's qubits only)."""
    from ..calibration import gate_errors, readout_errors

    used = tuple(sorted({circuit.find_bit(q).index for inst in circuit.data if inst.operation.name != "barrier" for q in inst.qubits}))
    errors = {(name, tuple(qubits)): err for name, qubits, err in gate_errors(snapshot, scale, used)}
    physical = circuit.layout.final_index_layout()
    readout = dict(zip(physical, readout_errors(snapshot, physical, scale))) if scale > 0 else {}
    return compile_program(circuit, errors, readout)


def aer_exact_probabilities(circuit, snapshot: dict, scale: float, inputs: torch.Tensor, threads: int = 0) -> torch.Tensor:
    """The joint outcome probabilities (N, 2^n_clbits) float64 of a transpiled, measured circuit before
    readout errors, from Qiskit Aer's density-matrix method with :func:`~nisqdiff.calibration.noise_model`
    at ``scale`` (bit i of an outcome index = logical qubit i). ``inputs`` (N, n_inputs) radians; one Aer
    run per input (``threads`` 0: Aer's default)."""
    import numpy as np
    from qiskit_aer import AerSimulator

    from ..calibration import noise_model
    from ..circuits.qiskit_build import input_columns

    sim = AerSimulator(method="density_matrix", noise_model=noise_model(snapshot, scale), max_parallel_threads=threads)
    qc = circuit.remove_final_measurements(inplace=False)
    qc.save_probabilities(circuit.layout.final_index_layout())
    cols = input_columns(qc)
    rows = [np.asarray(sim.run(qc.assign_parameters(row[cols])).result().data()["probabilities"]) for row in inputs.double().numpy()]
    return torch.tensor(np.array(rows))


def aer_exact_expval(circuit, snapshot: dict, scale: float, inputs: torch.Tensor, threads: int = 0, readout: bool = True,
                     probabilities: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The reference the emulator is validated against: <Z_q> (N, n_clbits) of a transpiled, measured
    circuit from :func:`aer_exact_probabilities` (or the ``probabilities`` it returned), with the readout
    errors at ``scale`` applied exactly to each qubit's marginal (``readout=False``: not at all), so
    there is no shot noise."""
    from ..calibration import readout_errors

    probs = aer_exact_probabilities(circuit, snapshot, scale, inputs, threads) if probabilities is None else probabilities
    phys = circuit.layout.final_index_layout()
    ro = torch.tensor(readout_errors(snapshot, phys, scale) if scale and readout else [(0.0, 0.0)] * len(phys), dtype=torch.float64)
    bits = ((torch.arange(probs.shape[1])[:, None] >> torch.arange(len(phys))[None, :]) & 1).double()
    p1 = probs.double() @ bits
    return 1 - 2 * (p1 * (1 - ro[:, 1]) + (1 - p1) * ro[:, 0])
