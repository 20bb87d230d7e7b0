"""A Qiskit SamplerV2 on Qiskit Aer that simulates each parameter set once and draws its shots in numpy.

``qiskit_aer.primitives.SamplerV2`` asks Aer for every shot's bit string (``memory=True``): for the
12-qubit vertex circuits Aer's per-shot string handling and the primitive's per-shot Python
conversion cost about 1.3 us per shot, three times the simulation itself at 1,024 shots
(docs/performance.md). :class:`AerProbabilitySampler` is the same primitive (``BaseSamplerV2``:
PUBs in, ``PrimitiveResult`` of ``SamplerPubResult`` with one ``BitArray`` per classical register out)
for circuits whose measurements all come at the end: it replaces them by Aer's ``save_probabilities``
on the measured qubits, runs every PUB's parameter sets in one ``AerSimulator.run``, and draws the
shots i.i.d. from each exact Born distribution by inverse-CDF sampling -- what Aer's own measurement
sampling does for such circuits, with a different random stream. Noise models that Aer applies
per shot (statevector trajectories) are not supported; this sampler is for ideal simulation.
"""

from __future__ import annotations

import numpy as np
from qiskit.primitives import BaseSamplerV2, PrimitiveJob, PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers import BitArray, DataBin
from qiskit.primitives.containers.sampler_pub import SamplerPub


class AerProbabilitySampler(BaseSamplerV2):
    """SamplerV2 (qiskit ``BaseSamplerV2``) over an ideal ``AerSimulator``.

    ``backend``: an ``AerSimulator`` without a noise model (statevector method); ``seed``: seed of the
    numpy generator that draws the shots (None: fresh entropy); ``default_shots``: shots of PUBs that
    give none. ``run`` raises ``ValueError`` for a circuit with a measurement followed by any other
    operation on its qubit or with a noise model on the backend.
    """

    def __init__(self, backend, seed: int | None = None, default_shots: int = 1024):
        if getattr(backend.options, "noise_model", None) is not None:
            raise ValueError("AerProbabilitySampler simulates ideal circuits; use qiskit_aer.primitives.SamplerV2 with noise")
        self.backend, self.seed, self.default_shots = backend, seed, default_shots

    def run(self, pubs, *, shots: int | None = None) -> PrimitiveJob:
        coerced = [SamplerPub.coerce(pub, shots or self.default_shots) for pub in pubs]
        prepared = [_without_final_measurements(pub.circuit) for pub in coerced]  # errors raised here, not in the job
        job = PrimitiveJob(self._run, coerced, prepared)
        job._submit()
        return job

    def _run(self, pubs: list[SamplerPub], prepared: list) -> PrimitiveResult:
        circuits = [circuit for circuit, _ in prepared]
        binds = []
        for pub, circuit in zip(pubs, circuits):  # as qiskit_aer's SamplerV2 binds them
            values = pub.parameter_values.as_array(circuit.parameters)
            binds.append({p: values[..., i].ravel() for i, p in enumerate(circuit.parameters)})
        result = self.backend.run(circuits, shots=1, parameter_binds=binds).result()
        rng = np.random.default_rng(self.seed)
        out, start = [], 0
        for pub, (_, registers) in zip(pubs, prepared):
            shape = pub.parameter_values.shape
            size = int(np.prod(shape, dtype=int))
            runs = size if pub.circuit.parameters else 1  # Aer runs a circuit without parameters once
            probs = np.stack([np.asarray(result.data(start + i)["probabilities"]) for i in range(runs)])
            probs = np.repeat(probs, size // runs, axis=0)
            start += runs
            outcomes = _draw(probs, pub.shots, rng).reshape(*shape, pub.shots)  # bit i: i-th measured qubit
            data = {name: _bit_array(outcomes, where) for name, where in registers.items()}
            meta = {"shots": pub.shots, "circuit_metadata": pub.circuit.metadata}
            out.append(SamplerPubResult(DataBin(**data, shape=shape), metadata=meta))
        seconds = result.metadata.get("time_taken_execute")  # Aer's own simulation time
        return PrimitiveResult(out, metadata={"version": 2, "sampler": "AerProbabilitySampler", "simulator_seconds": seconds})


def _without_final_measurements(circuit):
    """(circuit with its final measurements replaced by ``save_probabilities`` on the measured qubits,
    {register name: for each of its bits, the index of its qubit among the measured ones or -1}).
    Barriers among the final measurements are dropped (they do not change the state)."""
    from qiskit_aer.library import SaveProbabilities

    data = list(circuit.data)
    end = len(data)
    while end and data[end - 1].operation.name in ("measure", "barrier"):
        end -= 1
    tail = data[end:]
    if any(inst.operation.name == "measure" for inst in data[:end]):
        raise ValueError(f"circuit '{circuit.name}' measures before its end; AerProbabilitySampler needs final measurements")
    measured: dict = {}  # clbit -> qubit
    for inst in tail:
        if inst.operation.name == "measure":
            measured[inst.clbits[0]] = inst.qubits[0]
    qubits = list(dict.fromkeys(measured.values()))
    if not qubits:
        raise ValueError(f"circuit '{circuit.name}' measures nothing; add measurements (e.g. measure_all())")
    body = circuit.copy_empty_like()
    for inst in data[:end]:
        body.append(inst)
    if qubits:
        body.append(SaveProbabilities(len(qubits)), qubits)
    registers = {creg.name: [qubits.index(measured[b]) if b in measured else -1 for b in creg] for creg in circuit.cregs}
    return body, registers


def _draw(probs: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """(M, shots) outcome indices drawn i.i.d. from each row of ``probs`` (M, K) by inverse CDF: the
    outcome of u ~ U[0, 1) is the first i with cdf[i] > u, so an outcome of probability 0 is never drawn."""
    import torch

    cdf = torch.from_numpy(np.cumsum(probs, axis=1))
    cdf /= cdf[:, -1:].clone()  # the last entry is exactly 1 > u
    u = torch.from_numpy(rng.random((probs.shape[0], shots)))
    return torch.searchsorted(cdf, u, right=True).numpy()


def _bit_array(outcomes: np.ndarray, where: list[int]) -> BitArray:
    """BitArray of one register from outcome indices (..., shots): register bit j is bit ``where[j]``
    of the outcome (0 where the bit is not measured), through ``BitArray.from_bool_array``."""
    bits = np.zeros((*outcomes.shape, len(where)), dtype=bool)
    for j, i in enumerate(where):
        if i >= 0:
            bits[..., j] = (outcomes >> i) & 1
    return BitArray.from_bool_array(bits, order="little")
