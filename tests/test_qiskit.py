"""The Qiskit path: circuits from the same gate list, Statevector parity, the aer device, pennylane-qiskit."""

import json

import numpy as np
import pennylane as qml
import pytest
import torch
from _helpers import run_one
from qiskit.quantum_info import Statevector
from typer.testing import CliRunner

from nisqdiff.circuits import ANSATZE, expval, get_spec
from nisqdiff.circuits.qiskit_build import bind_weights, input_columns, qiskit_circuit
from nisqdiff.circuits.reference import pennylane_qnode
from nisqdiff.cli import app
from nisqdiff.devices import AerDevice, make_device


@pytest.mark.parametrize("ansatz", [*ANSATZE, "ring5x2"])
def test_qiskit_statevector_matches_our_simulator(ansatz):
    spec = get_spec(ansatz)
    torch.manual_seed(1)
    x = torch.rand(3, spec.n_qubits, dtype=torch.float64) * 6 - 3
    w = torch.rand(spec.n_weights, dtype=torch.float64)
    ours = expval(ansatz, x, w)
    circuit = bind_weights(ansatz, w.numpy(), measure=False)
    for b in range(3):
        values = x[b].numpy()[input_columns(circuit)]
        state = Statevector(circuit.assign_parameters(values))
        z = [1 - 2 * state.probabilities([q])[1] for q in range(spec.n_qubits)]
        assert np.allclose(z, ours[b].numpy(), atol=1e-6)


def test_circuit_structure():
    qc, x, theta = qiskit_circuit("hqconv")
    ops = qc.count_ops()
    assert ops["rx"] == 12 and ops["crz"] == 42 and ops["crx"] == 42 and ops["measure"] == 12
    assert len(x) == 12 and len(theta) == 84
    with pytest.raises(ValueError, match="84 weights"):
        bind_weights("hqconv", np.zeros(72))


@pytest.mark.parametrize("sampler", AerDevice.SAMPLERS)
def test_aer_device_agrees_with_noiseless_within_4_standard_errors(sampler):
    torch.manual_seed(2)
    x, w = torch.rand(4, 12, dtype=torch.float64) * 3, torch.rand(84, dtype=torch.float64)
    device = AerDevice(shots=8000, seed=5, sampler=sampler)
    res = run_one(device, "hqconv", w, x)
    exact = expval("hqconv", x, w)
    assert torch.all((res.evs - exact).abs() <= 4 * res.stds + 1e-12)
    assert res.metadata["backend"] == "aer_simulator" and res.circuit_metadata[0]["two_qubit_gates"] >= 84
    assert res.metadata["sampler"] == sampler
    first = device.transpiled("hqconv", w)
    run_one(device, "hqconv", w, x[:2])
    assert device.transpiled("hqconv", w) is first  # transpiled once per set of weights, not per call


def test_pennylane_qiskit_aer_qnode_agrees_with_our_batched_aer_path():
    torch.manual_seed(3)
    x, w = torch.rand(2, 12, dtype=torch.float64) * 3, torch.rand(72, dtype=torch.float64)
    shots = 6000
    qnode = pennylane_qnode("fqconv", qml.device("qiskit.aer", wires=12, seed=11), shots=shots)
    theirs = qnode(x, w)
    ours = run_one(AerDevice(shots=shots, seed=9), "fqconv", w, x)
    combined = (2 * ours.stds.square()).sqrt()  # two independent estimates of the same <Z>
    assert torch.all((theirs - ours.evs).abs() <= 4 * combined + 1e-12)


def test_sample_on_aer_from_cli(tmp_path, tiny_checkpoint):
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["sample", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--num", "2",
                                   "--steps", "2", "--device", "aer", "--shots", "128", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "samples.json").read_text())["device"]
    assert meta["device"] == "aer" and meta["shots"] == 128 and meta["device_calls"] == 8


def test_aer_needs_two_shots_and_a_known_sampler():
    with pytest.raises(ValueError, match="at least 2"):
        make_device("aer", shots=1)
    with pytest.raises(ValueError, match="valid: probabilities, aer"):
        AerDevice(sampler="exact")
    assert make_device("aer-samplerv2").settings()["sampler"] == "aer"


@pytest.mark.parametrize("calibration", ["fake_sherbrooke", "fake_torino"])
def test_transpiled_circuit_is_the_logical_one_up_to_its_layout(calibration):
    """The transpiled circuit, cut down to the physical qubits it uses, prepares the logical circuit's
    state on the qubits its final layout names (ancillas left in |0>), up to a global phase."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector, state_fidelity

    from nisqdiff.circuits.qiskit_build import bind_weights

    torch.manual_seed(4)
    w = torch.rand(84, dtype=torch.float64)
    transpiled = make_device("aer-noisy", shots=16, calibration=calibration).transpiled("hqconv", w)
    transpiled = transpiled.remove_final_measurements(inplace=False)
    used = sorted({transpiled.find_bit(q).index for inst in transpiled.data for q in inst.qubits})
    compact = QuantumCircuit(len(used))
    for inst in transpiled.data:
        compact.append(inst.operation, [used.index(transpiled.find_bit(q).index) for q in inst.qubits])
    where = [used.index(p) for p in transpiled.layout.final_index_layout()]  # logical q -> compact qubit
    expected = QuantumCircuit(len(used))
    expected.compose(bind_weights("hqconv", w, measure=False), qubits=where, inplace=True)
    assert len(used) >= 12 and compact.count_ops().keys() <= {"rz", "sx", "x", "ecr", "cz", "barrier"}
    for x in torch.rand(3, 12, dtype=torch.float64) * 3:
        states = [Statevector(c.assign_parameters({p: float(x[p.index]) for p in c.parameters})) for c in (compact, expected)]
        assert state_fidelity(*states) > 1 - 1e-9
