import json

import pytest
from typer.testing import CliRunner

from nisqdiff.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def classical_ckpt(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("cli") / "run"
    res = run("train", "--arch", "classical", "--max-steps", 2, "--subset", 32, "--batch-size", 16,
              "--data-dir", data_dir, "--out", out, "--grid-images", 4)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "metrics.jsonl").is_file() and list(out.glob("samples_step*.png"))
    return out / "checkpoint.pt"


def test_archs_table():
    res = run("archs")
    assert res.exit_code == 0
    assert "483,321" in res.output and "475,329" in res.output and "-476" in res.output


def test_unknown_arch_lists_valid_names(data_dir, tmp_path):
    res = run("train", "--arch", "5hqconv", "--data-dir", data_dir, "--out", tmp_path / "r")
    assert res.exit_code != 0
    assert "unknown architecture '5hqconv'" in res.output and "classical, 1hqconv" in res.output
    assert not (tmp_path / "r").exists()


def test_unknown_dataset(data_dir, tmp_path):
    res = run("train", "--dataset", "cifar10", "--data-dir", data_dir, "--out", tmp_path / "r")
    assert res.exit_code != 0 and "valid names: mnist, fashion-mnist" in res.output


def test_missing_data_names_places(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    res = run("train", "--arch", "classical", "--data-dir", empty, "--out", tmp_path / "r")
    assert res.exit_code != 0 and str(empty) in res.output and "--data-dir ../shared/data" in res.output


def test_sample_and_evaluate(classical_ckpt, tmp_path, data_dir):
    out = tmp_path / "s"
    res = run("sample", "--checkpoint", classical_ckpt, "--num", 6, "--steps", 2, "--batch-size", 4, "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "samples.png").is_file() and json.loads((out / "samples.json").read_text())["num"] == 6
    res = run("evaluate", "--samples", out / "samples.pt", "--data-dir", data_dir, "--num-real", 200)
    assert res.exit_code == 0, res.output
    assert "FID[classifier]" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"]["name"] == "classifier" and metrics["samples"]["sampler"] == "ddim"
    assert metrics["reference_classes"] is None and metrics["num_real"] == 200
    res = run("evaluate", "--samples", out / "samples.pt", "--data-dir", data_dir, "--num-real", 50, "--classes", "3",
              "--out", tmp_path / "m3.json")  # fmt: skip
    assert res.exit_code == 0 and "50 mnist images of classes 3" in res.output, res.output
    assert json.loads((tmp_path / "m3.json").read_text())["reference_classes"] == [3]
    res = run("evaluate", "--samples", out / "samples.pt", "--data-dir", data_dir, "--classes", "11")
    assert res.exit_code == 2 and "--classes 11 not in mnist" in res.output
    res = run("evaluate", "--samples", out / "samples.pt", "--data-dir", data_dir, "--num-real", 50, "--bootstrap", 5,
              "--out", tmp_path / "ci.json")  # fmt: skip
    ci = json.loads((tmp_path / "ci.json").read_text())
    assert res.exit_code == 0 and ci["fid_bootstrap"] == 5 and ci["fid_ci_low"] <= ci["fid_ci_high"], res.output
    for bad, says in ((["--bootstrap", "-1"], "--bootstrap"), (["--precision", "bf16"], "--precision applies with --checkpoint")):
        res = run("evaluate", "--samples", out / "samples.pt", "--data-dir", data_dir, *bad, "--out", tmp_path / "no.json")
        assert res.exit_code == 2 and says in res.output and not (tmp_path / "no.json").exists()


def test_checkpoint_of_another_arch_names_both(classical_ckpt, tmp_path):
    res = run("sample", "--checkpoint", classical_ckpt, "--arch", "1hqconv", "--out", tmp_path / "s")
    assert res.exit_code != 0 and "'classical'" in res.output and "'1hqconv'" in res.output


def test_existing_run_needs_resume_or_overwrite(classical_ckpt, data_dir):
    before = classical_ckpt.read_bytes()
    res = run("train", "--arch", "classical", "--max-steps", 1, "--data-dir", data_dir, "--out", classical_ckpt.parent)
    assert res.exit_code != 0 and "--resume" in res.output and "--overwrite" in res.output
    assert classical_ckpt.read_bytes() == before


def test_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    res = run("sample", "--checkpoint", bogus)
    assert res.exit_code != 0 and "unreadable or corrupt" in res.output
