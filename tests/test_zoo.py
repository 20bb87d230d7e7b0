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


def test_paper_table_checks_the_papers_sign_against_intervals_and_seed_spread(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "paper_table.py"
    spec = importlib.util.spec_from_file_location("paper_table", path)
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)

    def model(name, arch, fid, ci, **card):
        (tmp_path / name).mkdir()
        metrics = {"fid": fid, "fid_95ci": ci, "kid_mean": 1.0, "kid_std": 2.0, "is_mean": 8.0, "is_std": 0.1,
                   "images": 7000, "backbone": "classifier"}  # fmt: skip
        (tmp_path / name / "card.json").write_text(json.dumps({"arch": arch, "dataset": "mnist", "seed": 0,
                                                               "metrics": metrics, **card}))  # fmt: skip

    model("c0", "classical", 25.0, [22.0, 26.0])
    model("c1", "classical", 28.0, [24.0, 29.0])
    model("seven", "7hqconv", 20.0, [18.0, 21.0])  # paper: better; ours below both intervals and both seeds
    model("quanv", "quanv", 26.0, [23.0, 27.0])  # paper: better; ours inside the seed spread
    model("full", "fullhqconv", 30.0, [28.0, 31.0])  # paper: worse; ours above the spread, interval overlaps c1's
    model("ctrl", "classical", 27.0, [25.0, 28.0], init_from="c-19.pt")  # the 19 + 1 control: not a paper column
    model("unevaluated", "1hqconv", 0.0, [0.0, 0.0])
    (tmp_path / "unevaluated" / "card.json").write_text(json.dumps({"arch": "1hqconv", "dataset": "mnist"}))
    monkeypatch.setattr(model_zoo, "ZOO_DIR", tmp_path)
    result = table.build("mnist")
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"c0", "c1", "seven", "quanv", "full", "ctrl"} and result["classical_fid_mean"] == 26.5
    assert rows["seven"]["survives_interval"] and rows["seven"]["survives_seed_spread"]
    assert not rows["quanv"]["survives_interval"] and not rows["quanv"]["survives_seed_spread"]
    assert rows["full"]["paper_says"] == "worse" and rows["full"]["survives_seed_spread"]
    assert not rows["full"]["survives_interval"]
    assert rows["ctrl"]["column"] is None and "paper_says" not in rows["ctrl"]
    assert rows["seven"]["paper_minus_classical"] == pytest.approx(43.0731 - 45.2762)
    assert "| `seven` (7hqconv, seed 0) | 43.07" in table.markdown(result)


def test_the_package_with_its_zoo_stays_under_25_mb():
    from pathlib import Path

    root = Path(model_zoo.__file__).resolve().parent
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 25_000_000, f"nisqdiff/ holds {size / 1e6:.1f} MB: ship fp16 weights or fewer models"


def test_compare_samples_pairs_sets_from_the_same_noise_and_refuses_others(tmp_path, data_dir):
    import subprocess
    import sys
    from pathlib import Path

    import torch

    from nisqdiff.data import load_images

    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_samples.py"
    test, _ = load_images("mnist", "test", data_dir, subset=200)
    meta = {"num": 200, "seed": 0, "batch_size": 100, "sampler": "ddim", "steps": 100, "eta": 0.0}
    noisy = (test + 0.5 * torch.randn(test.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    for name, images, m in (("a", test, meta), ("b", noisy, meta), ("c", test, {**meta, "seed": 1})):
        torch.save({"images": images, "meta": m}, tmp_path / f"{name}.pt")

    def run(*sets):
        args = [sys.executable, str(script), "--reference", "a", "--num-real", "500", "--bootstrap", "20",
                "--data-dir", str(data_dir), "--out", str(tmp_path / "out.json")]  # fmt: skip
        for name in sets:
            args += ["--samples", f"{name}={tmp_path / name}.pt"]
        return subprocess.run(args, capture_output=True, text=True)

    res = run("a", "b")
    assert res.returncode == 0, res.stderr
    scores = json.loads((tmp_path / "out.json").read_text())["scores"]
    assert scores["b"]["fid_delta_ci_low"] > 0 and scores["a"]["fid_delta"] == 0  # the noisier set, beyond its interval
    res = run("a", "c")
    assert res.returncode == 2 and "differ in seed" in res.stderr and "initial noise" in res.stderr
