"""A device run says what it will cost: counted executions match what runs, slow runs warn with an
estimate and a faster equivalent device."""

import torch

from nisqdiff.cost import CostWatch, faster_alternative, run_cost
from nisqdiff.devices import make_device
from nisqdiff.pipeline import DiffusionPipeline


def test_counted_calls_and_executions_are_what_runs_and_a_slow_run_warns(tiny_checkpoint, capsys):
    pipe = DiffusionPipeline.from_pretrained(tiny_checkpoint("1hqconv"))
    pipe.set_executor(make_device("shots", shots=64))
    cost = run_cost(pipe.unet, 3, 2, 2)
    _, meta = pipe.generate(3, "ddim", 2, batch_size=2, show_progress=False)
    assert (meta["device"]["device_calls"], meta["device"]["circuit_executions"]) == (cost["calls"], cost["executions"])
    assert cost["executions"] == 3 * 2 * sum(c["inputs_per_image"] for c in pipe.unet.circuit_inventory())

    watch = CostWatch(make_device("shots", shots=64), calls=10_000, executions=123_456, warn_s=0.0, show=False)
    spec = torch.zeros(1, 4, 12), torch.zeros(1, 84)
    watch.run("hqconv", *spec)
    watch.run("hqconv", *spec)
    err = capsys.readouterr().err
    assert err.count("123,456 circuit executions in 10,000 device calls") == 1 and "in all" in err  # once, after call 1
    quiet = CostWatch(make_device("shots", shots=64), calls=2, executions=8, show=False)
    quiet.run("hqconv", *spec)
    assert capsys.readouterr().err == "" and quiet.estimate_s < 180


def test_the_suggested_device_computes_the_same_values():
    alt = faster_alternative(make_device("aer-noisy", calibration="fake_torino", noise_scale=2.0).settings())
    assert "--device emulator-exact --calibration fake_torino --noise-scale 2.0" in alt
    assert "--method exact" in faster_alternative(make_device("emulator").settings())
    assert faster_alternative(make_device("emulator-exact").settings()) is None


def test_aer_is_timed_on_one_execution_before_the_run_without_changing_its_draws(capsys):
    spec = torch.rand(1, 3, 4, generator=torch.Generator().manual_seed(0)) * 6, torch.rand(1, 16)
    plain = make_device("aer-noisy", calibration="fake_torino", shots=64, seed=3).run("basic", *spec)
    watch = CostWatch(make_device("aer-noisy", calibration="fake_torino", shots=64, seed=3), calls=10, executions=10**7,
                      warn_s=60.0, show=False)  # fmt: skip
    watched = watch.run("basic", *spec)
    err = capsys.readouterr().err
    assert "one execution took" in err and "--device emulator-exact --calibration fake_torino" in err
    assert torch.equal(plain.evs, watched.evs)  # the probe left the device's random stream alone
