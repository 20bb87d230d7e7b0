"""`nisqdiff sample` keeps every finished batch: an interrupted run continues with --resume and ends with
the images, device counts and files of an uninterrupted one."""

import json

import torch
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.pipeline import DiffusionPipeline

ARGS = ["--num", "5", "--steps", "2", "--batch-size", "2", "--device", "shots", "--shots", "64"]


def files(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_an_interrupted_run_resumes_to_the_images_of_an_uninterrupted_one(tiny_checkpoint, tmp_path, monkeypatch):
    ckpt, runner = str(tiny_checkpoint("1fqconv")), CliRunner()
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    res = runner.invoke(app, ["sample", "--checkpoint", ckpt, *ARGS, "--out", str(whole)])
    assert res.exit_code == 0, res.output
    assert json.loads((whole / "manifest.json").read_text())["status"] == "done" and not (whole / "batches").exists()

    real_call, calls = DiffusionPipeline.__call__, []

    def stop_at_the_third_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionPipeline, "__call__", stop_at_the_third_batch)
    res = runner.invoke(app, ["sample", "--checkpoint", ckpt, *ARGS, "--out", str(cut)])
    assert res.exit_code == 130 and "2 of 3 batches are kept" in res.output and f"--resume {cut}" in res.output
    assert not (cut / "samples.pt").exists() and len(list((cut / "batches").glob("batch_*.pt"))) == 2
    monkeypatch.setattr(DiffusionPipeline, "__call__", real_call)

    before = files(cut)
    res = runner.invoke(app, ["sample", "--checkpoint", ckpt, *ARGS, "--out", str(cut)])
    assert res.exit_code == 2 and f"unfinished sampling run: continue it with --resume {cut}" in res.output
    res = runner.invoke(app, ["sample", "--resume", str(cut), "--num", "7"])
    assert res.exit_code == 2 and "drop --num" in res.output
    assert files(cut) == before  # refused: nothing kept was touched

    res = runner.invoke(app, ["sample", "--resume", str(cut)])
    assert res.exit_code == 0, res.output
    a, b = torch.load(whole / "samples.pt", weights_only=True), torch.load(cut / "samples.pt", weights_only=True)
    assert torch.equal(a["images"], b["images"])  # shot noise included: every batch reseeds its device
    assert b["meta"]["resumed_batches"] == 2 and "resumed_batches" not in a["meta"]
    for key in ("device_calls", "circuit_executions"):
        assert b["meta"]["device"][key] == a["meta"]["device"][key] > 0
    assert not (cut / "batches").exists() and json.loads((cut / "manifest.json").read_text())["status"] == "done"

    res = runner.invoke(app, ["sample", "--checkpoint", ckpt, *ARGS, "--out", str(whole)])
    assert res.exit_code == 2 and "holds a finished sampling run or pass --overwrite" in res.output
    res = runner.invoke(app, ["sample", "--checkpoint", ckpt, *ARGS, "--seed", "1", "--out", str(whole), "--overwrite"])
    assert res.exit_code == 0, res.output
    replaced = torch.load(whole / "samples.pt", weights_only=True)
    assert replaced["meta"]["seed"] == 1 and not torch.equal(replaced["images"], a["images"])
