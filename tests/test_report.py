"""`nisqdiff report`: device-string grammar, the study's outputs, resumption and refusing to mix studies."""

import json

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.reports import StudyError, parse_setting, parse_settings, run_study


def test_device_strings_parse():
    s = parse_setting("emulator:fake_sherbrooke@0.5", 1024)
    assert (s.kind, s.calibration, s.noise_scale, s.shots, s.readout, s.zne) == (
        "emulator",
        "fake_sherbrooke",
        0.5,
        1024,
        False,
        False,
    )
    s = parse_setting("emulator:fake_torino@2/128+readout+zne", 1024)
    assert (s.calibration, s.noise_scale, s.shots, s.readout, s.zne) == ("fake_torino", 2.0, 128, True, True)
    assert parse_setting("shots:8192", 1).shots == 8192 and parse_setting("noiseless", 1).kind == "noiseless"
    assert parse_setting("aer-noisy:fake_kyiv@1", 256).kind == "aer-noisy"
    assert parse_setting("emulator:fake_sherbrooke@1+readout", 8).slug == "emulator-fake_sherbrooke-1-readout"


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
    with pytest.raises(ValueError, match=message):
        parse_settings(text, 1024)


def test_study_writes_the_report_resumes_and_refuses_another_study(tiny_checkpoint, data_dir, tmp_path):
    ckpt = tiny_checkpoint("1hqconv")
    out = tmp_path / "study"
    settings = parse_settings("noiseless,depolarized,shots:16,emulator:fake_sherbrooke@1/16+readout", 16)
    kwargs = dict(num=4, steps=2, batch_size=2, shots=16, trajectories=4, data_dir=str(data_dir), num_real=64, bootstrap=3)
    result = run_study(ckpt, settings, out, **kwargs)
    labels = [r["setting"] for r in result["settings"]]
    assert labels == ["noiseless", "depolarized", "shots:16", "emulator:fake_sherbrooke@1/16+readout"]
    for name in ("metrics.json", "metrics.csv", "metric_vs_shots.png", "metric_vs_noise.png", "grids.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    rows = {r["setting"]: r for r in result["settings"]}
    assert rows["noiseless"]["mean_stderr"] == 0 and rows["shots:16"]["mean_stderr"] > 0.05
    assert rows["noiseless"]["pixel_rmse_vs_noiseless"] == 0 and rows["depolarized"]["pixel_rmse_vs_noiseless"] > 0
    assert rows["noiseless"]["fid_delta"] == 0 and "fid_delta_ci_low" in rows["shots:16"]
    assert (
        rows["emulator:fake_sherbrooke@1/16+readout"]["fid_ci_low"]
        <= rows["emulator:fake_sherbrooke@1/16+readout"]["fid_ci_high"]
    )
    assert "classifier" in (out / "report.md").read_text() and result["backbone"]["name"] == "classifier"
    circuits = json.loads((out / "circuits.json").read_text())
    assert len(circuits) == 4 and all(c["two_qubit_gates"] > 100 and 0 < c["success_probability"] < 1 for c in circuits)

    # an interrupted study (a missing batch) resumes: only that batch is sampled again, identically
    batch = out / "settings" / "emulator-fake_sherbrooke-1-16-readout" / "batch_001.pt"
    before = torch.load(batch, weights_only=True)
    batch.unlink()
    stamp = (out / "settings" / "noiseless" / "batch_000.pt").stat().st_mtime_ns
    run_study(ckpt, settings, out, **kwargs)
    assert torch.equal(torch.load(batch, weights_only=True), before)
    assert (out / "settings" / "noiseless" / "batch_000.pt").stat().st_mtime_ns == stamp

    with pytest.raises(StudyError, match="holds another study \\(num 4 here vs 6 asked"):
        run_study(ckpt, settings, out, **{**kwargs, "num": 6})


def test_report_cli_errors(tiny_checkpoint, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--checkpoint", str(tmp_path / "none.pt"), "--devices", "emulator:x@"])
    assert res.exit_code != 0 and "grammar" in res.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    ckpt = tiny_checkpoint("classical")
    res = runner.invoke(app, ["report", "--checkpoint", str(ckpt), "--devices", "noiseless", "--out", str(tmp_path / "busy")])
    assert res.exit_code != 0 and "holds no study.json" in res.output
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
