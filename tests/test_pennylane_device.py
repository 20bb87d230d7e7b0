"""The pennylane device: any installed PennyLane device runs the circuits (default.qubit exact and with
shots, lightning.qubit, pennylane-qiskit's qiskit.aer against the project's own aer device)."""

import json

import pytest
import torch
from _helpers import run_one
from typer.testing import CliRunner

from nisqdiff.circuits import ExactSimulator
from nisqdiff.cli import app
from nisqdiff.devices import make_device

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def circuit():
    g = torch.Generator().manual_seed(5)
    return torch.rand(84, generator=g, dtype=torch.float64) * 6, torch.rand(3, 12, generator=g, dtype=torch.float64) * 3


@pytest.mark.parametrize("name, options", [("default.qubit", None), ("lightning.qubit", None),
                                           ("qiskit.aer", {"method": "statevector"})])  # fmt: skip
def test_exact_expectation_values_match_the_simulator(circuit, name, options):
    w, x = circuit
    res = run_one(make_device("pennylane", pl_device=name, pl_options=options), "hqconv", w, x)
    exact = run_one(ExactSimulator(), "hqconv", w, x)
    assert torch.allclose(res.evs, exact.evs, atol=1e-6) and torch.all(res.stds == 0)


def test_shots_are_seeded_and_within_their_standard_errors(circuit):
    w, x = circuit
    device = make_device("pennylane", pl_device="default.qubit", shots=2000, seed=7)
    first = run_one(device, "hqconv", w, x)
    again = run_one(make_device("pennylane", pl_device="default.qubit", shots=2000, seed=7), "hqconv", w, x)
    device.reseed(8)
    other = run_one(device, "hqconv", w, x)
    exact = run_one(ExactSimulator(), "hqconv", w, x).evs
    assert torch.equal(first.evs, again.evs) and not torch.equal(first.evs, other.evs)
    z = (first.evs - exact) / first.stds.clamp_min(1e-3)
    assert z.abs().max() < 4.5 and 0.3 < z.square().mean() < 2.5


def test_a_sampling_device_is_not_taken_for_exact():
    from nisqdiff.errors import DeviceError

    with pytest.raises(DeviceError, match="cannot compute exact expectation values as configured; give --shots N"):
        make_device("pennylane", pl_device="qiskit.aer")


def test_qiskit_aer_with_shots_agrees_with_the_aer_device(circuit):
    w, x = circuit
    pl = run_one(make_device("pennylane", pl_device="qiskit.aer", shots=4000), "hqconv", w, x)
    aer = run_one(make_device("aer", shots=4000), "hqconv", w, x)
    z = (pl.evs - aer.evs) / (pl.stds.square() + aer.stds.square()).sqrt().clamp_min(1e-3)
    assert z.abs().max() < 4.5 and not torch.equal(pl.evs, aer.evs)


def test_sample_on_a_pennylane_device(tiny_checkpoint, tmp_path):
    out = tmp_path / "pl"
    res = CliRunner().invoke(app, ["sample", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--num", "2", "--steps", "2",
                                   "--device", "pennylane", "--pl-device", "lightning.qubit", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    device = json.loads((out / "samples.json").read_text())["device"]
    assert device["pl_device"] == "lightning.qubit" and device["device_calls"] == 8 and device["circuit_executions"] == 16
