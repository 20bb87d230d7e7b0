import json

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.circuits import expval
from nisqdiff.cli import app
from nisqdiff.devices import DeviceExecutor, NoiselessDevice, ShotsDevice, make_device
from nisqdiff.models import UNet
from nisqdiff.sampling import sample_images


def test_noiseless_device_is_exact():
    x, w = torch.rand(5, 12, dtype=torch.float64) * 3, torch.rand(84, dtype=torch.float64)
    res = NoiselessDevice().run("hqconv", w, x)
    assert torch.allclose(res.expval, expval("hqconv", x, w)) and torch.all(res.stderr == 0)
    assert res.metadata["device"] == "noiseless"


@pytest.mark.parametrize("ansatz", ["hqconv", "fqconv"])
def test_shot_estimator_is_unbiased_with_the_right_standard_error(ansatz):
    nw = {"hqconv": 84, "fqconv": 72}[ansatz]
    torch.manual_seed(3)
    x, w = torch.rand(1, 12, dtype=torch.float64) * 3, torch.rand(nw, dtype=torch.float64)
    exact = expval(ansatz, x, w)[0]
    reps, shots = 4000, 200
    res = ShotsDevice(shots, seed=11).run(ansatz, w, x.expand(reps, 12))  # 4000 independent estimates
    mean, std = res.expval.mean(0), res.expval.std(0)
    assert torch.all((mean - exact).abs() < 4 * std / reps**0.5 + 1e-9)
    assert torch.allclose(std, ((1 - exact.square()) / shots).sqrt(), rtol=0.1)  # the true standard error
    assert torch.allclose(res.stderr.mean(0), std, rtol=0.1)  # what the device reports
    again = ShotsDevice(shots, seed=11).run(ansatz, w, x.expand(reps, 12))
    assert torch.equal(res.expval, again.expval)  # seeded


def test_device_executor_one_call_per_circuit_stage():
    model = UNet("1hqconv").eval()
    reference = sample_images(model, 6, "ddim", steps=2, batch_size=6, seed=4)
    executor = DeviceExecutor(NoiselessDevice())
    model.set_executor(executor)
    assert torch.allclose(sample_images(model, 6, "ddim", steps=2, batch_size=6, seed=4), reference, atol=1e-5)
    assert executor.calls == 4 * 2  # 4 circuit stages x 2 denoising steps, whatever the batch size
    assert executor.executions == 4 * 2 * 6
    model.set_executor(DeviceExecutor(ShotsDevice(100_000, seed=0)))
    noisy = sample_images(model, 6, "ddim", steps=2, batch_size=6, seed=4)
    assert 0 < (noisy - reference).abs().max() < 0.1


def test_bad_device_input():
    with pytest.raises(
        ValueError, match="valid: aer, aer-noisy, aer-noisy-torino, aer-samplerv2, emulator, ibm, noiseless, shots"
    ):
        make_device("aer-nosy")
    with pytest.raises(ValueError, match="--shots does not apply to device 'noiseless'"):
        make_device("noiseless", shots=100)
    with pytest.raises(ValueError, match="--backend NAME"):
        make_device("ibm")
    with pytest.raises(ValueError, match="at least 2"):
        make_device("shots", shots=1)
    with pytest.raises(ValueError, match="at least one input"):
        NoiselessDevice().run("hqconv", torch.zeros(84), torch.zeros(0, 12))
    with pytest.raises(ValueError, match=r"inputs \(N, 12\)"):
        NoiselessDevice().run("hqconv", torch.zeros(84), torch.zeros(3, 4))


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
    assert "noiseless" in runner.invoke(app, ["devices"]).output
