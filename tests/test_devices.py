import json

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.circuits import expval
from nisqdiff.cli import app
from _helpers import run_one

from nisqdiff.circuits import ExactSimulator, ExecutionLog
from nisqdiff.devices import ShotsDevice, make_device
from nisqdiff.pipeline import DiffusionPipeline
from nisqdiff.models import UNet


def test_noiseless_device_is_exact():
    x, w = torch.rand(5, 12, dtype=torch.float64) * 3, torch.rand(84, dtype=torch.float64)
    device = make_device("noiseless")
    assert isinstance(device, ExactSimulator)  # the noiseless device is the training simulator itself
    res = run_one(device, "hqconv", w, x)
    assert torch.allclose(res.evs, expval("hqconv", x, w)) and torch.all(res.stds == 0)
    assert res.metadata["device"] == "noiseless"


@pytest.mark.parametrize("ansatz", ["hqconv", "fqconv"])
def test_shot_estimator_is_unbiased_with_the_right_standard_error(ansatz):
    nw = {"hqconv": 84, "fqconv": 72}[ansatz]
    torch.manual_seed(3)
    x, w = torch.rand(1, 12, dtype=torch.float64) * 3, torch.rand(nw, dtype=torch.float64)
    exact = expval(ansatz, x, w)[0]
    reps, shots = 4000, 200
    res = run_one(ShotsDevice(shots, seed=11), ansatz, w, x.expand(reps, 12))  # 4000 independent estimates
    mean, std = res.evs.mean(0), res.evs.std(0)
    assert torch.all((mean - exact).abs() < 4 * std / reps**0.5 + 1e-9)
    assert torch.allclose(std, ((1 - exact.square()) / shots).sqrt(), rtol=0.1)  # the true standard error
    assert torch.allclose(res.stds.mean(0), std, rtol=0.1)  # what the device reports
    again = run_one(ShotsDevice(shots, seed=11), ansatz, w, x.expand(reps, 12))
    assert torch.equal(res.evs, again.evs)  # seeded


def test_device_executor_one_call_per_circuit_stage():
    pipe = DiffusionPipeline(UNet("1hqconv"))
    reference = pipe(6, "ddim", steps=2, batch_size=6, seed=4)
    exact = ExecutionLog(make_device("noiseless"))
    pipe.set_executor(exact)
    assert torch.equal(pipe(6, "ddim", steps=2, batch_size=6, seed=4), reference)
    assert exact.calls == 4 * 2 and exact.summary()["mean_stderr"] == 0
    log = ExecutionLog(make_device("shots", shots=100_000, seed=0))
    pipe.set_executor(log)
    noisy = pipe(6, "ddim", steps=2, batch_size=6, seed=4)
    assert log.calls == 4 * 2  # 4 circuit stages x 2 denoising steps, whatever the batch size
    assert log.executions == 4 * 2 * 6 and log.summary()["mean_stderr"] > 0
    assert 0 < (noisy - reference).abs().max() < 0.1


def test_bad_device_input():
    with pytest.raises(
        ValueError, match="valid: aer, aer-noisy, aer-noisy-torino, aer-samplerv2, depolarized, emulator, emulator-exact, ibm, ibm-estimator, noiseless, pennylane, shots"
    ):
        make_device("aer-nosy")
    with pytest.raises(ValueError, match="--shots does not apply to device 'noiseless'"):
        make_device("noiseless", shots=100)
    with pytest.raises(ValueError, match="--backend NAME"):
        make_device("ibm")
    with pytest.raises(ValueError, match="at least 2"):
        make_device("shots", shots=1)
    with pytest.raises(ValueError, match="at least one input"):
        run_one(make_device("depolarized"), "hqconv", torch.zeros(84), torch.zeros(0, 12))
    with pytest.raises(ValueError, match=r"inputs \(C, N, 12\)"):
        run_one(make_device("shots"), "hqconv", torch.zeros(84), torch.zeros(3, 4))


def test_sample_on_shots_device_from_cli(tmp_path, tiny_checkpoint):
    ckpt = tiny_checkpoint("1fqconv")
    runner = CliRunner()
    out = tmp_path / "s"
    res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--num", "3", "--steps", "2", "--device", "shots",
                              "--shots", "64", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "samples.json").read_text())
    assert meta["device"]["device"] == "shots" and meta["device"]["shots"] == 64
    assert meta["device"]["device_calls"] == 8 and meta["device"]["max_stderr"] > 0
    res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--device", "ibm-quantum"])
    assert res.exit_code != 0 and "valid: aer, aer-noisy" in res.output
    listed = runner.invoke(app, ["devices"]).output
    assert "noiseless" in listed and "depolarized" in listed
    res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--num", "2", "--steps", "2", "--device", "depolarized",
                              "--out", str(tmp_path / "d")])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "d" / "samples.json").read_text())["device"]
    assert meta["device"] == "depolarized" and meta["device_calls"] == 8 and meta["max_stderr"] == 0
