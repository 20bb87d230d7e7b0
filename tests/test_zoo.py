"""The model zoo: names wherever a model is asked for, paths first, verified files, clear errors."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from nisqdiff import model_zoo
from nisqdiff.cli import app
from nisqdiff.errors import CheckpointError
from nisqdiff.pipeline import DiffusionPipeline


def test_the_shipped_models_load_by_name_and_are_listed():
    assert "mnist-classical" in model_zoo.names()
    pipe = DiffusionPipeline.from_pretrained("mnist-classical")
    assert pipe.arch == "classical" and pipe.info["step"] == 9375 and model_zoo.zoo_name(pipe.info["source"]) == "mnist-classical"
    res = CliRunner().invoke(app, ["models", "--json"])
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert res.exit_code == 0 and {r["name"] for r in rows} == set(model_zoo.names())
    assert all(r["bytes"] < 3_000_000 for r in rows)  # EMA weights only
    card = json.loads(CliRunner().invoke(app, ["models", "mnist-classical"]).output)
    assert card["seed"] == 0 and card["epochs"] == 20 and "command" in card
    table = CliRunner().invoke(app, ["models"]).output
    assert f"FID[classifier] {card['metrics']['fid']:.2f} [{card['metrics']['fid_95ci'][0]:.2f}," in table


def test_sampling_from_a_zoo_name(tmp_path):
    res = CliRunner().invoke(app, ["sample", "--checkpoint", "mnist-classical", "--num", "2", "--steps", "2", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert model_zoo.zoo_name(meta["checkpoint"]) == "mnist-classical"


def test_an_existing_path_wins_and_zoo_prefix_forces_the_zoo(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["export", "--checkpoint", str(tiny_checkpoint("1hqconv")), "--out", "mnist-classical"])
    assert res.exit_code == 0, res.output
    assert DiffusionPipeline.from_pretrained("mnist-classical").arch == "1hqconv"  # the folder here
    assert DiffusionPipeline.from_pretrained("zoo:mnist-classical").arch == "classical"


def test_unknown_missing_and_corrupt_zoo_models_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no zoo model 'mnist-nope'; the zoo has: .*mnist-classical"):
        model_zoo.resolve("zoo:mnist-nope")
    with pytest.raises(CheckpointError, match="does not exist, and no zoo model has that name"):
        model_zoo.resolve(str(tmp_path / "nothing"))
    zoo = tmp_path / "zoo"
    shutil.copytree(model_zoo.ZOO_DIR / "mnist-classical", zoo / "mnist-classical")
    monkeypatch.setattr(model_zoo, "ZOO_DIR", zoo)
    weights = zoo / "mnist-classical" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    res = CliRunner().invoke(app, ["sample", "--checkpoint", "mnist-classical", "--num", "2", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and f"{weights} fails its SHA-256 check" in res.output and not (tmp_path / "s").exists()
    weights.unlink()
    with pytest.raises(CheckpointError, match=f"lacks {weights}"):
        model_zoo.folder("mnist-classical")
