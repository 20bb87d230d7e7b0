"""The emulator device: the circuit aer-noisy runs, its shot and error statistics, mitigation (its agreement
with Aer's exact density matrix is tested with the exact method in test_exact.py)."""

import math

import pytest
import torch
from _helpers import run_one

from nisqdiff.circuits import expval, get_spec
from nisqdiff.circuits.trajectories import run_program
from nisqdiff.devices import EmulatorDevice, make_device
from nisqdiff.devices.base import clear_transpile_cache
from nisqdiff.devices.emulator import emulator_program


def _setup(ansatz, calibration, n_inputs, seed=0):
    spec = get_spec(ansatz)
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(spec.n_weights, generator=gen, dtype=torch.float64)
    inputs = torch.rand(n_inputs, spec.n_qubits, generator=gen, dtype=torch.float64) * 2 * math.pi
    dev = EmulatorDevice(calibration, shots=None, trajectories=256)
    return dev, dev.transpiled(ansatz, weights), weights, inputs


def test_noise_scale_zero_is_the_ideal_circuit():
    dev, circuit, weights, inputs = _setup("hqconv", "fake_torino", 4)
    clear_transpile_cache()  # transpile again for aer-noisy rather than share the emulator's circuit
    aer = make_device("aer-noisy", calibration="fake_torino").transpiled("hqconv", weights)
    assert aer is not circuit and aer is make_device("aer-noisy", calibration="fake_torino").transpiled("hqconv", weights)

    def ops(c):  # instruction by instruction (the input Parameters are equal by name, not identity)
        return [(i.operation.name, [str(p) for p in i.operation.params], [c.find_bit(q).index for q in i.qubits]) for i in c.data]

    assert ops(circuit) == ops(aer)  # the emulator runs the circuit aer-noisy runs
    dev.noise_scale = 0.0
    res = run_one(dev, "hqconv", weights.float(), inputs.float())
    ideal = expval("hqconv", inputs.float(), weights.float())
    assert torch.allclose(res.evs, ideal, atol=1e-4)


def test_shot_estimates_are_unbiased_with_honest_standard_errors():
    dev, circuit, _, inputs = _setup("basic", "fake_sherbrooke", 1)
    prog = emulator_program(circuit, dev.snapshot, 2.0)
    exact, _ = run_program(prog, inputs.float(), 4096, None, torch.Generator().manual_seed(3))
    rows = inputs.float().repeat(400, 1)  # 400 independent repetitions of one input
    z, se = run_program(prog, rows, 8, 64, torch.Generator().manual_seed(4))
    spread = z.std(0)  # the real scatter of the estimator
    assert ((z.mean(0) - exact[0]).abs() <= 4 * spread / 20 + 0.01).all()
    ratio = se.mean(0) / spread
    assert ((ratio > 0.75) & (ratio < 1.33)).all(), ratio  # the reported SE matches the scatter


def test_device_calls_are_reproducible_and_independent():
    spec = get_spec("basic")
    weights, inputs = torch.rand(spec.n_weights), torch.rand(3, spec.n_qubits)
    a = make_device("emulator", shots=64, trajectories=8, seed=5)
    first, second = run_one(a, "basic", weights, inputs).evs, run_one(a, "basic", weights, inputs).evs
    again = run_one(make_device("emulator", shots=64, trajectories=8, seed=5), "basic", weights, inputs).evs
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_zne_and_readout_mitigation_move_towards_the_ideal_value():
    spec = get_spec("basic")
    gen = torch.Generator().manual_seed(7)
    weights, inputs = torch.rand(spec.n_weights, generator=gen), torch.rand(16, spec.n_qubits, generator=gen) * 6
    ideal = expval("basic", inputs, weights)
    errors = {}
    for label, opts in {"raw": {}, "readout": {"mitigate_readout": True}, "zne": {"zne": (1.0, 2.0)}}.items():
        dev = EmulatorDevice("fake_sherbrooke", noise_scale=2.0, shots=None, trajectories=128, seed=1, **opts)
        res = run_one(dev, "basic", weights, inputs)
        errors[label] = float((res.evs - ideal).abs().mean())
        assert res.metadata["device"] == "emulator"
    assert errors["readout"] < errors["raw"] and errors["zne"] < errors["raw"], errors


def test_bad_emulator_input():
    with pytest.raises(ValueError, match="unknown calibration 'nowhere'; valid: .*fake_sherbrooke"):
        make_device("emulator", calibration="nowhere")
    with pytest.raises(ValueError, match="multiple of the trajectories"):
        make_device("emulator", shots=100, trajectories=32)
    with pytest.raises(ValueError, match="noise-scale"):
        make_device("emulator", noise_scale=-1.0)
