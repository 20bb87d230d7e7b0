"""Calibration snapshots, noise models with --noise-scale, and the aer-noisy device."""

import pytest
import torch
from _helpers import run_one
from typer.testing import CliRunner

from nisqdiff.calibration import CalibrationError, coupling_map, list_calibrations, load_calibration, noise_model, target
from nisqdiff.circuits import expval
from nisqdiff.cli import app
from nisqdiff.devices import make_device


def test_builtin_snapshots():
    assert {"fake_sherbrooke", "fake_torino", "fake_kyiv"} <= set(list_calibrations())
    sher, tor = load_calibration("fake_sherbrooke"), load_calibration("fake_torino")
    assert "ecr" in sher["basis_gates"] and "cz" in tor["basis_gates"]
    assert sher["num_qubits"] == 127 and len(sher["qubits"]) == 127 and sher["calibration_date"].startswith("2025")
    assert all(0 <= q["prob_meas1_prep0"] <= 1 and 0 <= q["prob_meas0_prep1"] <= 1 for q in sher["qubits"])
    good = [q for q in sher["qubits"] if q["prob_meas1_prep0"] < 0.1]
    assert len(good) > 100  # real data: a few qubits have broken readout (P(1|0) up to 1)
    with pytest.raises(CalibrationError, match="valid: .*fake_sherbrooke"):
        load_calibration("fake_nowhere")


def test_noise_scale_scales_every_rate():
    snap = load_calibration("fake_sherbrooke")
    one, two = target(snap, 1.0), target(snap, 2.0)
    pair = tuple(coupling_map(snap)[0])
    assert two["ecr"][pair].error == pytest.approx(2 * one["ecr"][pair].error)
    assert two.qubit_properties[0].t1 == pytest.approx(one.qubit_properties[0].t1 / 2)
    assert noise_model(snap, 0.0).is_ideal()
    model = noise_model(snap, 1.0)
    assert not model.is_ideal() and "ecr" in model.noise_instructions and "measure" in model.noise_instructions
    with pytest.raises(ValueError, match="noise-scale"):
        target(snap, -1.0)


def _deviation(calibration, scale, shots=4000):
    torch.manual_seed(0)
    x, w = torch.rand(3, 4, dtype=torch.float64) * 3, torch.rand(16, dtype=torch.float64) * 6
    exact = expval("basic", x, w)
    res = run_one(make_device("aer-noisy", shots=shots, seed=1, calibration=calibration, noise_scale=scale), "basic", w, x)
    true_se = ((1 - exact.square()).clamp_min(1e-6) / shots).sqrt()
    return (res.evs - exact).abs(), true_se, res


def test_noise_scale_zero_is_the_ideal_device():
    dev, se, res = _deviation("fake_sherbrooke", 0.0)
    assert torch.all(dev <= 4 * se) and res.metadata["noise_scale"] == 0.0


@pytest.mark.parametrize("calibration", ["fake_sherbrooke", "fake_torino"])
def test_noise_degrades_measurably_and_more_at_scale_2(calibration):
    d1, se, res = _deviation(calibration, 1.0)
    d2, _, _ = _deviation(calibration, 2.0)
    assert d1.mean() > 4 * se.mean()  # scale 1 differs from ideal by far more than shot noise
    assert d2.mean() > 1.3 * d1.mean()
    assert res.metadata["calibration"] == calibration and res.metadata["calibration_date"]


def test_layout_avoids_qubits_with_broken_readout():
    snap = load_calibration("fake_sherbrooke")
    device = make_device("aer-noisy", shots=16, calibration="fake_sherbrooke")
    circuit = device.transpiled("basic", torch.rand(16, dtype=torch.float64))
    measured = {circuit.find_bit(inst.qubits[0]).index for inst in circuit.data if inst.operation.name == "measure"}
    assert all(snap["qubits"][q]["prob_meas1_prep0"] < 0.2 for q in measured)


def test_transpiled_circuit_uses_only_coupled_pairs():
    snap = load_calibration("fake_sherbrooke")
    device = make_device("aer-noisy", shots=16, calibration="fake_sherbrooke")
    circuit = device.transpiled("basic", torch.rand(16, dtype=torch.float64))
    pairs = {tuple(p) for p in coupling_map(snap)}
    used = [tuple(circuit.find_bit(q).index for q in inst.qubits) for inst in circuit.data if inst.operation.num_qubits == 2]
    assert used and all(p in pairs for p in used)
    assert {inst.operation.name for inst in circuit.data} <= set(snap["basis_gates"]) | {"measure", "barrier"}


def test_bad_noisy_input():
    assert make_device("aer-noisy").snapshot["name"] == "fake_sherbrooke"  # the profile's calibration
    with pytest.raises(ValueError, match="unknown calibration 'fake_nowhere'; valid: fake_kyiv"):
        make_device("aer-noisy", calibration="fake_nowhere")
    runner = CliRunner()
    res = runner.invoke(app, ["calibration", "show", "fake_nowhere"])
    assert res.exit_code != 0 and "fake_torino" in res.output
    res = runner.invoke(app, ["calibration", "list"])
    assert res.exit_code == 0 and "fake_sherbrooke" in res.output and "2025-02-26" in res.output


def test_devices_inspect_reports_every_circuit(tiny_checkpoint, tmp_path):
    folder = tmp_path / "pretrained"  # a pretrained folder, as every command that takes --checkpoint accepts
    # (1hqconv: its circuits transpile in milliseconds; FQConv's take seconds each on a 133-qubit map)
    assert CliRunner().invoke(app, ["export", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--out", str(folder)]).exit_code == 0
    res = CliRunner().invoke(app, ["devices", "inspect", "--checkpoint", str(folder), "--calibration", "fake_torino"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.startswith("mid_block")]
    assert len(rows) == 4 and all(0 < float(r.split()[4]) < 1 for r in rows)  # success probability
    assert "hqconv on line" in res.output and "hqconv on all-to-all" in res.output


def test_circuit_stats_success_probability():
    from qiskit import QuantumCircuit

    from nisqdiff.calibration import circuit_stats

    snap = load_calibration("fake_torino")
    a, b = coupling_map(snap)[0]
    qc = QuantumCircuit(snap["num_qubits"], 1)
    qc.cz(a, b)
    qc.measure(a, 0)
    err = next(g["error"] for g in snap["gates"] if g["name"] == "cz" and g["qubits"] == [a, b])
    q = snap["qubits"][a]
    expected = (1 - err) * (1 - (q["prob_meas1_prep0"] + q["prob_meas0_prep1"]) / 2)
    st = circuit_stats(qc, snap)
    assert st["two_qubit_gates"] == 1 and abs(st["success_probability"] - expected) < 1e-12


def test_readout_mitigation_inverts_the_assignment_matrices():
    torch.manual_seed(0)
    x, w = torch.rand(4, 4, dtype=torch.float64) * 3, torch.rand(16, dtype=torch.float64) * 6
    exact = expval("basic", x, w)
    raw_dev = make_device("aer-noisy", shots=8000, seed=1, calibration="fake_sherbrooke")
    mit_dev = make_device("aer-noisy", shots=8000, seed=1, calibration="fake_sherbrooke", mitigate_readout=True)
    raw, mit = run_one(raw_dev, "basic", w, x), run_one(mit_dev, "basic", w, x)  # same seed: the same counts
    snap = load_calibration("fake_sherbrooke")
    physical = raw_dev.transpiled("basic", w).layout.final_index_layout()
    e10 = torch.tensor([snap["qubits"][p]["prob_meas1_prep0"] for p in physical], dtype=torch.float64)
    e01 = torch.tensor([snap["qubits"][p]["prob_meas0_prep1"] for p in physical], dtype=torch.float64)
    expected = 1 - 2 * ((1 - raw.evs) / 2 - e10) / (1 - e10 - e01)
    assert torch.allclose(mit.evs, expected.clamp(-1, 1))
    assert (mit.evs - exact).abs().mean() < (raw.evs - exact).abs().mean()
    assert mit.metadata["mitigate_readout"] is True
    with pytest.raises(ValueError, match="--mitigate-readout does not apply to device 'shots'"):
        make_device("shots", shots=10, mitigate_readout=True)


def test_density_matrix_and_trajectories_agree_and_auto_picks_by_shots():
    torch.manual_seed(1)
    x, w = torch.rand(4, 4, dtype=torch.float64) * 3, torch.rand(16, dtype=torch.float64) * 6
    runs = {
        m: run_one(make_device("aer-noisy", shots=4000, seed=2, calibration="fake_torino", noise_scale=2.0, method=m), "basic", w, x)
        for m in ("statevector", "density_matrix")
    }
    a, b = runs["statevector"], runs["density_matrix"]
    assert torch.all((a.evs - b.evs).abs() <= 4 * (a.stds.square() + b.stds.square()).sqrt())
    device = make_device("aer-noisy", shots=256, seed=5, calibration="fake_torino", method="statevector")
    first, second = run_one(device, "basic", w, x), run_one(device, "basic", w, x)
    assert not torch.equal(first.evs, second.evs)  # every call draws fresh noise trajectories...
    again = make_device("aer-noisy", shots=256, seed=5, calibration="fake_torino", method="statevector")
    assert torch.equal(run_one(again, "basic", w, x).evs, first.evs)  # ...reproducibly
    assert make_device("aer-noisy", shots=1024).method == "density_matrix"
    assert make_device("aer-noisy", shots=128).method == "statevector"
    with pytest.raises(ValueError, match="valid: auto, statevector, density_matrix"):
        make_device("aer-noisy", method="mps")
