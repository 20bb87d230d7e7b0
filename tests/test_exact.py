"""The emulator's exact method (Heisenberg picture) against Aer's density matrix, the noiseless simulator
and the trajectories; binomial shots; the circuits it refuses; zero-noise extrapolators."""

import math

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from nisqdiff.circuits import expval, get_spec, heisenberg
from nisqdiff.circuits.heisenberg import TRUNCATION, compile_exact
from nisqdiff.circuits.trajectories import compile_program, path_order, run_program
from nisqdiff.devices import EmulatorDevice
from nisqdiff.devices.emulator import aer_exact_expval, aer_exact_probabilities, emulator_program
from nisqdiff.devices.zne import extrapolate, fit_weights
from nisqdiff.errors import DeviceError


def _circuit(ansatz, calibration, n_inputs, seed=0):
    spec = get_spec(ansatz)
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(spec.n_weights, generator=gen, dtype=torch.float64)
    inputs = torch.rand(n_inputs, spec.n_qubits, generator=gen, dtype=torch.float64) * 2 * math.pi
    dev = EmulatorDevice(calibration, shots=None, method="exact")
    return dev, dev.transpiled(ansatz, weights), weights, inputs


@pytest.mark.parametrize("calibration", ["fake_sherbrooke", "fake_torino"])  # ECR and CZ heavy-hex
def test_exact_equals_aer_density_matrix_at_scales_0_1_2_with_and_without_readout(calibration):
    dev, circuit, weights, inputs = _circuit("basic", calibration, 2)
    for scale in (0.0, 1.0, 2.0):
        prog = emulator_program(circuit, dev.snapshot, scale)
        exact = compile_exact(prog)
        ref = aer_exact_expval(circuit, dev.snapshot, scale, inputs)
        assert (exact.expval(inputs) - ref).abs().max() < 1e-5, scale
        z, se = run_program(prog, inputs.float(), 256, None, torch.Generator().manual_seed(1))
        assert ((z.double() - ref).abs() <= 4 * se.double() + 1e-5).all()  # the trajectories agree within 4 SE
        if scale == 1:  # before readout: Aer without the readout error
            bare = aer_exact_expval(circuit, dev.snapshot, scale, inputs, readout=False)
            assert (exact.expval(inputs, readout=False) - bare).abs().max() < 1e-5
            assert (bare - ref).abs().max() > 1e-3  # the readout error is visible
        if scale == 0:
            ideal = expval("basic", inputs.float(), weights.float()).double()
            assert (exact.expval(inputs) - ideal).abs().max() < 1e-5


def test_exact_on_a_12_qubit_hqconv_circuit_equals_aer_and_the_trajectories():
    dev, circuit, _, inputs = _circuit("hqconv", "fake_sherbrooke", 1)
    prog = emulator_program(circuit, dev.snapshot, 1.0)
    assert prog.stats["active_qubits"] == 12 and prog.stats["channels"] < prog.stats["two_qubit_gates"]
    whole = compile_exact(prog, truncate=False)
    exact = heisenberg._truncated(whole)
    probs = aer_exact_probabilities(circuit, dev.snapshot, 1.0, inputs)
    ref = aer_exact_expval(circuit, dev.snapshot, 1.0, inputs, probabilities=probs)
    bare = aer_exact_expval(circuit, dev.snapshot, 1.0, inputs, readout=False, probabilities=probs)
    assert (exact.expval(inputs) - ref).abs().max() < 1e-5 and (exact.expval(inputs, readout=False) - bare).abs().max() < 1e-5
    z, se = run_program(prog, inputs.float(), 256, None, torch.Generator().manual_seed(2))
    assert ((z.double() - ref).abs() <= 4 * se.double()).all()  # the trajectory method agrees within 4 SE
    # expval runs on each observable's SVD truncated at TRUNCATION: against the whole coefficient tensors in
    # float64 no <Z> moves by more than that bound (plus float32 rounding), with far fewer terms than dense
    m, _, d_hi = whole.coeffs.shape
    assert exact.factors is not None and exact.stats["exact_rank"] < m * d_hi / 4 and exact.coeffs is None
    many = torch.rand(300, 12, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 8 - 4
    dense = whole.expval(many, dtype=torch.float64)
    assert (exact.expval(many, dtype=torch.float64) - dense).abs().max() < TRUNCATION + 1e-12
    assert (exact.expval(many) - dense).abs().max() < 5e-6  # float32 products, as the dense float32 path


def test_exact_equals_the_mean_of_many_trajectories():
    dev, circuit, _, inputs = _circuit("basic", "fake_torino", 8, seed=3)
    prog = emulator_program(circuit, dev.snapshot, 2.0)
    z, se = run_program(prog, inputs.float(), 512, None, torch.Generator().manual_seed(4))
    diff = (compile_exact(prog).expval(inputs) - z.double()).abs()
    assert (diff <= 4 * se.double()).all(), (diff / se).max()


def test_binomial_shots_are_unbiased_with_the_right_standard_error():
    spec = get_spec("basic")
    gen = torch.Generator().manual_seed(5)
    weights, x = torch.rand(1, spec.n_weights, generator=gen), torch.rand(1, 1, spec.n_qubits, generator=gen) * 6
    exact = EmulatorDevice("fake_sherbrooke", shots=None, method="exact").run("basic", x, weights).evs[0, 0]
    dev = EmulatorDevice("fake_sherbrooke", shots=256, method="exact", seed=6)
    res = dev.run("basic", x.expand(1, 2000, -1), weights)  # 2000 independent 256-shot estimates
    z, se = res.evs[0].double(), res.stds[0].double()
    spread = z.std(0)
    assert ((z.mean(0) - exact.double()).abs() <= 4 * spread / math.sqrt(2000)).all()
    truth = ((1 - exact.double().square()) / 256).sqrt()  # the binomial standard error of 256 shots
    assert ((spread / truth - 1).abs() < 0.08).all() and ((se.mean(0) / truth - 1).abs() < 0.05).all()
    assert not torch.equal(z[0], z[1])


def test_a_circuit_outside_the_polynomial_form_is_refused_with_the_reason():
    x = ParameterVector("x", 2)
    qc = QuantumCircuit(2, 2)
    qc.rz(x[0], 0)
    qc.sx(0)
    qc.rz(x[1], 0)  # a second input gate on qubit 0
    qc.cz(0, 1)
    qc.measure([0, 1], [0, 1])
    prog = compile_program(qc, {}, {})
    with pytest.raises(DeviceError, match="2 input-dependent gates; the exact method handles one per qubit .*trajectories"):
        compile_exact(prog)
    z, _ = run_program(prog, torch.zeros(1, 2), 2, None, torch.Generator())  # the trajectories run it
    assert z.shape == (1, 2)


def test_qubits_are_ordered_along_the_coupling_path():
    assert path_order([0, 1, 2, 3, 4], {(0, 4), (4, 2), (2, 1), (1, 3)}) == [0, 4, 2, 1, 3]
    assert path_order([0, 1, 2, 3], {(0, 1), (1, 2), (1, 3)}) == [0, 1, 3, 2]  # a star: the leaf goes after its hub


def test_extrapolators_recover_their_own_model_and_propagate_errors():
    factors = (1.0, 2.0, 3.0)
    np.testing.assert_allclose(fit_weights((1.0, 2.0), 1), [2.0, -1.0])
    np.testing.assert_allclose(fit_weights(factors, 2), [3.0, -3.0, 1.0])  # Richardson through 3 points
    lam = torch.tensor(factors)
    se = [torch.full((3,), 0.01)] * 3
    for name, truth, curve in [
        ("linear", torch.tensor([0.9, -0.5, 0.2]), lambda a: a - 0.1 * lam[:, None]),
        ("richardson", torch.tensor([0.8, 0.3, -0.6]), lambda a: a - 0.1 * lam[:, None] + 0.02 * lam[:, None] ** 2),
        ("exponential", torch.tensor([0.9, -0.7, 0.4]), lambda a: a * torch.exp(-lam[:, None] / 4)),
    ]:
        ys = curve(truth[None, :].expand(3, -1))
        value, err, fallbacks = extrapolate(factors, list(ys), se, name)
        assert torch.allclose(value.float(), truth, atol=1e-6) and fallbacks == 0, name
        assert (err > 0.01).all()  # extrapolation amplifies the error
    assert np.square(fit_weights(factors, 2)).sum() == pytest.approx(19.0)  # Richardson's variance amplification
    assert np.square(fit_weights(factors, 1)).sum() == pytest.approx(7 / 3)  # the least-squares line's
    mixed = [torch.tensor([0.1]), torch.tensor([-0.05]), torch.tensor([0.02])]
    value, _, fallbacks = extrapolate(factors, mixed, [torch.tensor([0.01])] * 3, "exponential")
    assert fallbacks == 1 and value.item() == pytest.approx(float(fit_weights(factors, 1) @ np.array([0.1, -0.05, 0.02])))


def test_exact_zne_without_shots_moves_towards_the_ideal_value():
    spec = get_spec("basic")
    gen = torch.Generator().manual_seed(7)
    weights, inputs = torch.rand(1, spec.n_weights, generator=gen), torch.rand(1, 16, spec.n_qubits, generator=gen) * 6
    ideal = expval("basic", inputs[0], weights[0]).double()
    err = {}
    for name in ("raw", "richardson", "linear", "exponential"):
        opts = {} if name == "raw" else {"zne": (1, 2, 3), "zne_extrapolator": name}
        res = EmulatorDevice("fake_sherbrooke", shots=None, method="exact", mitigate_readout=True, **opts).run("basic", inputs, weights)
        assert res.stds.abs().max() == 0  # exact: no estimation noise
        err[name] = float((res.evs[0].double() - ideal).abs().mean())
        assert res.metadata["method"] == "exact"
    assert all(err[name] < err["raw"] for name in ("richardson", "linear", "exponential")), err
