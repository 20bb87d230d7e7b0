"""Training and sampling over 2 gloo processes started by torchrun equal a one-process run (same thread
count): parameters and predictions within 1e-5 after training, resume included; identical images."""

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.distributed import Dist, batch_slice
from nisqdiff.models import UNet

TRAIN = ["train", "--arch", "classical", "--subset", "16", "--batch-size", "8", "--no-amp", "--grid-images", "0", "--threads", "1"]


def _run(args, distributed: bool, data_dir=None):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "nisqdiff"]
    cmd = [*(launcher if distributed else [sys.executable, "-m", "nisqdiff"]), *args]
    if distributed:
        cmd.insert(cmd.index(args[0]) + 1, "--distributed")
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _model(path):
    ckpt = torch.load(path / "checkpoint.pt", weights_only=False)
    model = UNet("classical")
    model.load_state_dict(ckpt["model"])
    return ckpt, model.eval()


def test_distributed_training_equals_one_process(tmp_path, data_dir):
    _run([*TRAIN, "--max-steps", "3", "--out", str(tmp_path / "one")], False, data_dir)
    _run([*TRAIN, "--max-steps", "2", "--out", str(tmp_path / "two")], True, data_dir)
    _run([*TRAIN, "--max-steps", "3", "--resume", "--out", str(tmp_path / "two")], True, data_dir)
    (one, m1), (two, m2) = _model(tmp_path / "one"), _model(tmp_path / "two")
    assert two["step"] == 3 and two["command"].startswith("torchrun --nproc-per-node 2 -m nisqdiff train --distributed")
    assert abs(one["metrics"]["loss"] - two["metrics"]["loss"]) < 1e-6
    x, t = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 100, 500, 900])
    with torch.no_grad():
        assert (m1(x, t) - m2(x, t)).abs().max() < 1e-5
    diffs = torch.cat([(one["model"][k] - two["model"][k]).abs().flatten() for k in one["model"]])
    # conv biases right before a GroupNorm have zero gradient in exact arithmetic: Adam turns the rounding
    # noise of their reduction into +-lr steps, which change nothing downstream (the predictions above)
    assert (diffs > 1e-5).float().mean() < 1e-4 and diffs.max() < 3 * 1e-3
    assert all(torch.equal(one["ema"][k], two["ema"][k]) for k in one["ema"])  # no EMA update before step 10: the same init


def test_distributed_sampling_equals_one_process(tmp_path, tiny_checkpoint):
    args = ["sample", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--num-images", "7", "--batch-size", "3", "--steps", "2",
            "--device", "shots", "--shots", "32"]  # fmt: skip
    _run([*args, "--out", str(tmp_path / "one")], False)
    _run([*args, "--out", str(tmp_path / "two")], True)
    one, two = (torch.load(tmp_path / d / "samples.pt", weights_only=True) for d in ("one", "two"))
    assert torch.equal(one["images"], two["images"]) and two["images"].shape == (7, 1, 28, 28)
    meta = json.loads((tmp_path / "two" / "samples.json").read_text())
    assert meta["distributed"] == {"world": 2} and meta["device"]["device_calls"] == one["meta"]["device"]["device_calls"]


def test_distributed_bad_input(tiny_checkpoint, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--distributed", "--max-steps", "1", "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "needs torchrun's environment" in res.output and "torchrun --nproc-per-node" in res.output
    res = runner.invoke(app, ["sample", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--device", "ibm", "--backend",
                              "fake_guadalupe", "--distributed", "--out", str(tmp_path / "s")])  # fmt: skip
    assert res.exit_code == 2 and "--distributed does not apply to device ibm" in res.output
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        batch_slice(128, Dist(0, 3, 0, "cpu"))
    assert batch_slice(128, Dist(1, 2, 1, "cpu")) == slice(64, 128) and not (tmp_path / "t").exists()


def test_distributed_study_equals_one_process(tmp_path, tiny_checkpoint, data_dir):
    from nisqdiff.study import batch_path

    args = ["report", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--devices", "noiseless,shots:16", "--num-images", "6",
            "--batch-size", "2", "--steps", "2", "--num-real", "50", "--bootstrap", "0", "--data-dir", str(data_dir)]  # fmt: skip
    _run([*args, "--out", str(tmp_path / "one")], False)
    _run([*args, "--out", str(tmp_path / "two")], True)
    for slug in ("noiseless", "shots-16"):
        for b in range(3):
            one, two = (torch.load(batch_path(tmp_path / d, slug, b), weights_only=True) for d in ("one", "two"))
            timeless = [{k: v for k, v in r["device"].items() if k != "device_seconds"} for r in (one, two)]
            assert torch.equal(one["images"], two["images"]) and timeless[0] == timeless[1]
    fids = [[r["fid"] for r in json.loads((tmp_path / d / "metrics.json").read_text())["settings"]] for d in ("one", "two")]
    assert fids[0] == fids[1] and (tmp_path / "two" / "report.md").is_file()
