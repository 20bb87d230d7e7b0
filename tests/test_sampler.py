"""AerProbabilitySampler: the same SamplerV2 results as qiskit_aer's own SamplerV2, drawn from Aer's probabilities."""

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import SamplerV2

from nisqdiff.devices.sampler import AerProbabilitySampler


def _two_registers() -> QuantumCircuit:
    """x on q0 and q2, measured across two registers out of order, one bit left unmeasured."""
    qc = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(3, "b"))
    qc.x(0)
    qc.x(2)
    qc.barrier()
    qc.measure(2, qc.clbits[0])  # a[0] = 1
    qc.measure(1, qc.clbits[1])  # a[1] = 0
    qc.measure(0, qc.clbits[4])  # b[2] = 1; b[0], b[1] unmeasured
    qc.measure(2, qc.clbits[3])  # b[1] = 1 (a qubit measured twice)
    return qc


def test_registers_bits_and_shapes_equal_aer_samplerv2():
    qc = _two_registers()
    ours = AerProbabilitySampler(AerSimulator(), seed=1).run([qc], shots=50).result()[0]
    theirs = SamplerV2(seed=1).run([qc], shots=50).result()[0]
    for reg in ("a", "b"):
        a, b = getattr(ours.data, reg), getattr(theirs.data, reg)
        assert a.num_bits == b.num_bits and a.array.shape == b.array.shape
        assert a.get_counts() == b.get_counts()
    assert ours.data.a.get_counts() == {"01": 50} and ours.data.b.get_counts() == {"110": 50}


def test_parameter_arrays_are_sampled_from_each_parameter_sets_distribution():
    theta = Parameter("t")
    qc = QuantumCircuit(1)
    qc.ry(theta, 0)
    qc.measure_all()
    angles = np.array([[0.0, np.pi], [np.pi / 2, 2.0]])  # pub shape (2, 2)
    shots = 20000
    res = AerProbabilitySampler(AerSimulator(), seed=3).run([(qc, angles[..., None])], shots=shots).result()[0]
    assert res.data.meas.shape == (2, 2) and res.data.meas.num_shots == shots
    p1 = res.data.meas.bitcount().mean(-1)  # fraction of 1s per parameter set
    exact = np.sin(angles / 2) ** 2
    assert np.all(np.abs(p1 - exact) <= 4 * np.sqrt(exact * (1 - exact) / shots) + 1e-12)
    assert p1[0, 0] == 0 and p1[0, 1] == 1  # probability 0 outcomes never drawn


def test_seeded_and_refuses_what_it_cannot_simulate():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    run = lambda seed: AerProbabilitySampler(AerSimulator(), seed=seed).run([qc], shots=64).result()[0].data.meas.array  # noqa: E731
    assert np.array_equal(run(7), run(7)) and not np.array_equal(run(7), run(8))
    mid = QuantumCircuit(1, 2)
    mid.measure(0, 0)
    mid.x(0)
    mid.measure(0, 1)
    with pytest.raises(ValueError, match="measures before its end"):
        AerProbabilitySampler(AerSimulator()).run([mid])
    with pytest.raises(ValueError, match="measures nothing"):
        AerProbabilitySampler(AerSimulator()).run([QuantumCircuit(1)])
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["x"])
    with pytest.raises(ValueError, match="ideal"):
        AerProbabilitySampler(AerSimulator(noise_model=noise))


def test_a_circuit_without_parameters_gives_every_parameter_set_its_shots():
    """Aer runs a circuit without parameters once; each of the PUB's (N, 0) parameter sets still gets
    its own, independently drawn shots of that distribution."""
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.measure_all()
    res = AerProbabilitySampler(AerSimulator(), seed=4).run([(qc, np.zeros((3, 0)))], shots=4000).result()[0]
    bits = res.data.meas.to_bool_array(order="little")  # (3, 4000, 2)
    assert bits.shape == (3, 4000, 2) and np.all(np.abs(bits.mean(1) - 0.5) < 4 * 0.5 / np.sqrt(4000))
    assert not np.array_equal(bits[0], bits[1])
