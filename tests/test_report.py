"""`nisqdiff report`: device-setting strings, the study's outputs, resumption, rendering and refusing to mix studies."""

import json

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.devices import DeviceSpec, make_device, parse_setting, parse_settings
from nisqdiff.errors import StudyError, UsageError
from nisqdiff.report import render_report
from nisqdiff.study import plan_study, run_study


def test_device_strings_parse_into_a_profile_and_overrides():
    s = parse_setting("emulator:fake_sherbrooke@0.5", 1024)
    assert (s.profile, s.overrides) == ("emulator", {"calibration": "fake_sherbrooke", "noise_scale": 0.5, "shots": 1024})
    s = parse_setting("emulator:fake_torino@2/128+readout+zne", 1024)
    assert s.overrides == {"calibration": "fake_torino", "noise_scale": 2.0, "shots": 128, "mitigate_readout": True,
                           "zne": (1.0, 2.0, 3.0), "zne_extrapolator": "richardson"}  # fmt: skip
    s = parse_setting("emulator:fake_torino@1+exact+zne-polynomial_degree_2", 64)
    assert s.overrides | {"method": "exact", "zne_extrapolator": "polynomial_degree_2"} == s.overrides
    assert parse_setting("shots:8192", 1) == DeviceSpec("shots:8192", "shots", {"shots": 8192})
    assert parse_setting("noiseless", 1).profile == "noiseless" and parse_setting("depolarized", 1).profile == "depolarized"
    assert parse_setting("aer-noisy:fake_kyiv@1", 256).options()["kind"] == "aer-noisy"
    assert parse_setting("emulator:fake_sherbrooke@1+readout", 8).slug == "emulator-fake_sherbrooke-1-readout"


@pytest.mark.parametrize(
    "text, profile, options",
    [
        ("noiseless", "noiseless", {}),
        ("depolarized", "depolarized", {}),
        ("shots:128", "shots", {"shots": 128}),
        ("emulator:fake_sherbrooke@1", "emulator", {"calibration": "fake_sherbrooke", "noise_scale": 1.0, "shots": 1024}),
        ("emulator:fake_torino@0.5/256+readout+zne", "emulator",
         {"calibration": "fake_torino", "noise_scale": 0.5, "shots": 256, "mitigate_readout": True, "zne": (1.0, 2.0, 3.0)}),
        ("emulator:fake_torino@1/256+exact+zne-exponential", "emulator",
         {"calibration": "fake_torino", "noise_scale": 1.0, "shots": 256, "method": "exact", "zne": (1, 2, 3),
          "zne_extrapolator": "exponential"}),
        ("aer-noisy:fake_kyiv@2/64+readout", "aer-noisy",
         {"calibration": "fake_kyiv", "noise_scale": 2.0, "shots": 64, "mitigate_readout": True}),
    ],
)  # fmt: skip
def test_every_setting_string_builds_the_device_of_its_profile_plus_overrides(text, profile, options):
    seed = {"seed": 3} if profile not in ("noiseless", "depolarized") else {}
    from_setting = make_device(parse_setting(text, 1024), **seed)
    from_profile = make_device(profile, **seed, **options)
    assert type(from_setting) is type(from_profile) and from_setting.settings() == from_profile.settings()


@pytest.mark.parametrize(
    "text, message",
    [
        ("qpu:fake_sherbrooke@1", "unknown device kind 'qpu'.*valid: noiseless, depolarized, shots, emulator, aer-noisy"),
        ("emulator:fake_sherbrooke", "does not parse; grammar: noiseless \\| depolarized \\| shots:SHOTS"),
        ("emulator:fake_sherbrooke@1+twirl", "unknown or repeated option"),
        ("aer-noisy:fake_sherbrooke@1+zne", "unknown or repeated option"),
        ("shots:lots", "shots must be an integer"),
        ("emulator:nowhere@1", "unknown calibration 'nowhere'; valid: .*fake_sherbrooke"),
        ("noiseless,noiseless", "repeats a setting: noiseless"),
    ],
)
def test_bad_device_strings(text, message):
    with pytest.raises(UsageError, match=message):
        parse_settings(text, 1024)


def test_study_writes_the_report_resumes_and_refuses_another_study(tiny_checkpoint, data_dir, tmp_path):
    ckpt = tiny_checkpoint("1hqconv")
    out = tmp_path / "study"
    settings = parse_settings("noiseless,depolarized,shots:16,emulator:fake_sherbrooke@1/16+readout", 16)
    kwargs = dict(num=4, steps=2, batch_size=2, shots=16, trajectories=4, data_dir=str(data_dir), num_real=64, bootstrap=3)
    result = run_study(plan_study(ckpt, settings, out, **kwargs))
    render_report(out)
    labels = [r["setting"] for r in result["settings"]]
    assert labels == ["noiseless", "depolarized", "shots:16", "emulator:fake_sherbrooke@1/16+readout"]
    for name in ("metrics.json", "metrics.csv", "metric_vs_shots.png", "metric_vs_noise.png", "grids.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    rows = {r["setting"]: r for r in result["settings"]}
    assert rows["noiseless"]["mean_stderr"] == 0 and rows["shots:16"]["mean_stderr"] > 0.05
    assert rows["noiseless"]["pixel_rmse_vs_noiseless"] == 0 and rows["depolarized"]["pixel_rmse_vs_noiseless"] > 0
    assert rows["noiseless"]["fid_delta"] == 0 and "fid_delta_ci_low" in rows["shots:16"]
    assert rows["emulator:fake_sherbrooke@1/16+readout"]["shots_per_execution"] == 16
    assert rows["emulator:fake_sherbrooke@1/16+readout"]["readout"] and rows["noiseless"]["shots"] is None
    assert "classifier" in (out / "report.md").read_text() and result["backbone"]["name"] == "classifier"
    circuits = json.loads((out / "circuits.json").read_text())
    assert len(circuits) == 4 and all(c["two_qubit_gates"] > 100 and 0 < c["success_probability"] < 1 for c in circuits)
    assert "| fake_sherbrooke@2025-02-26T14:43:10-05:00 |" in (out / "report.md").read_text()  # the snapshot's ID

    # the report is redrawn from the saved files alone: the same tables, without sampling or scoring
    report_md, csv_text = (out / "report.md").read_text(), (out / "metrics.csv").read_text()
    (out / "report.md").unlink(), (out / "metrics.csv").unlink(), (out / "grids.png").unlink()
    res = CliRunner().invoke(app, ["report", "--render", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.md").read_text() == report_md and (out / "metrics.csv").read_text() == csv_text
    assert (out / "grids.png").stat().st_size > 0

    # an interrupted study (a missing batch) resumes: only that batch is sampled again, identically, and
    # every reported figure but the wall times is the same (each batch file holds its own device record)
    batch = out / "settings" / "emulator-fake_sherbrooke-1-16-readout" / "batch_001.pt"
    before = torch.load(batch, weights_only=True)
    batch.unlink()
    stamp = (out / "settings" / "noiseless" / "batch_000.pt").stat().st_mtime_ns
    again = run_study(plan_study(ckpt, settings, out, **kwargs))
    after = torch.load(batch, weights_only=True)
    assert torch.equal(after["images"], before["images"])
    assert {k: v for k, v in after["device"].items() if "seconds" not in k} == {
        k: v for k, v in before["device"].items() if "seconds" not in k
    }
    assert (out / "settings" / "noiseless" / "batch_000.pt").stat().st_mtime_ns == stamp
    for r0, r1 in zip(result["settings"], again["settings"]):
        assert {k: v for k, v in r0.items() if k != "sampling_seconds"} == {k: v for k, v in r1.items() if k != "sampling_seconds"}

    with pytest.raises(StudyError, match="holds another study \\(num 4 here vs 6 asked"):
        run_study(plan_study(ckpt, settings, out, **{**kwargs, "num": 6}))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)  # images differ in their last bits between thread counts
    try:
        with pytest.raises(StudyError, match=f"threads {threads} here vs {threads + 1} asked"):
            run_study(plan_study(ckpt, settings, out, **kwargs))
    finally:
        torch.set_num_threads(threads)


def test_report_cli_errors(tiny_checkpoint, tmp_path, data_dir):
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--checkpoint", str(tmp_path / "none.pt"), "--devices", "emulator:x@"])
    assert res.exit_code != 0 and "grammar" in res.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    ckpt = tiny_checkpoint("classical")
    res = runner.invoke(app, ["report", "--checkpoint", str(ckpt), "--devices", "noiseless", "--data-dir", str(data_dir),
                              "--out", str(tmp_path / "busy")])  # fmt: skip
    assert res.exit_code != 0 and "holds no study.json" in res.output
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_study_of_a_one_digit_model_scores_against_that_digit(tmp_path, data_dir):
    """The reference images are those of the classes the model was trained on, as `evaluate` takes them."""
    from nisqdiff.training import TrainConfig, train

    train(TrainConfig(arch="qbottleneck", classes=[3], per_class=8, batch_size=8, max_steps=1, grid_images=0), tmp_path / "m",
          data_dir, show_progress=False)  # fmt: skip
    res = CliRunner().invoke(app, ["report", "--checkpoint", str(tmp_path / "m" / "checkpoint.pt"), "--devices",
                                   "noiseless,depolarized", "--num", "4", "--steps", "2", "--batch-size", "4",
                                   "--num-real", "50", "--bootstrap", "0", "--data-dir", str(data_dir),
                                   "--out", str(tmp_path / "study")])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "study" / "metrics.json").read_text())
    assert metrics["reference_classes"] == [3] and metrics["num_real"] == 50
    assert "50 training images of classes 3" in (tmp_path / "study" / "report.md").read_text()
