"""DiffusionPipeline: the one sampling path, pretrained folders, saved schedules and older checkpoints."""

import json

import pytest
import torch
from typer.testing import CliRunner

from nisqdiff.checkpoints import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, load_model
from nisqdiff.cli import app
from nisqdiff.diffusion import ScheduleConfig
from nisqdiff.errors import CheckpointError
from nisqdiff.pipeline import DiffusionPipeline


def test_save_pretrained_round_trip_samples_the_same_images_bit_for_bit(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("1hqconv")
    pipe = DiffusionPipeline.from_pretrained(ckpt)
    folder = pipe.save_pretrained(tmp_path / "pretrained")
    again = DiffusionPipeline.from_pretrained(folder)
    assert torch.equal(again(3, "ddim", steps=3, seed=5), pipe(3, "ddim", steps=3, seed=5))
    state = load_checkpoint(ckpt)["ema"]
    assert all(torch.equal(v, state[k]) for k, v in again.unet.state_dict().items())  # the EMA weights
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["arch"] == "1hqconv" and config["architecture"]["ansatz"] == "hqconv"
    assert config["schedule"] == ScheduleConfig().to_dict() and config["training"]["subset"] == 16
    prov = config["provenance"]
    assert prov["dataset"] == "mnist" and prov["step"] == 1 and prov["code"]["nisqdiff"] and len(prov["weights_sha256"]) == 64
    assert again.info["kind"] == "pretrained" and pipe.info["kind"] == "checkpoint"


def test_cli_export_then_every_command_takes_the_folder(tiny_checkpoint, tmp_path):
    runner = CliRunner()
    ckpt, folder = tiny_checkpoint("1fqconv"), tmp_path / "model"
    res = runner.invoke(app, ["export", "--checkpoint", str(ckpt), "--out", str(folder)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", "--checkpoint", str(ckpt), "--out", str(folder)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    outs = {}
    for name, source in (("ckpt", ckpt), ("folder", folder)):
        outs[name] = tmp_path / name
        res = runner.invoke(app, ["sample", "--checkpoint", str(source), "--num", "2", "--steps", "2", "--out", str(outs[name])])
        assert res.exit_code == 0, res.output
    images = {k: torch.load(v / "samples.pt", weights_only=True)["images"] for k, v in outs.items()}
    assert torch.equal(images["ckpt"], images["folder"])  # (devices inspect on a folder: tests/test_noise.py)


def test_cli_schedule_options_are_saved_and_used_by_every_sampler(data_dir, tmp_path):
    res = CliRunner().invoke(app, ["train", "--arch", "classical", "--schedule", "shifted-cosine", "--logsnr-shift", "1.65",
                                   "--timesteps", "30", "--max-steps", "1", "--subset", "16", "--batch-size", "16",
                                   "--grid-images", "0", "--data-dir", str(data_dir), "--out", str(tmp_path / "run")])  # fmt: skip
    assert res.exit_code == 0, res.output
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "run" / "checkpoint.pt")
    assert pipe.schedule == ScheduleConfig(timesteps=30, schedule="shifted-cosine", logsnr_shift=1.65)
    meta = json.loads(runner_sample(tmp_path / "run" / "checkpoint.pt", tmp_path / "s").read_text())
    assert meta["steps"] == 30  # DDPM runs the saved T


def runner_sample(ckpt, out):
    res = CliRunner().invoke(app, ["sample", "--checkpoint", str(ckpt), "--sampler", "ddpm", "--num", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out / "samples.json"


def test_the_schedule_is_saved_with_the_model_and_rebuilt(data_dir, tmp_path):
    from nisqdiff.training import TrainConfig, train

    schedule = {"timesteps": 40, "schedule": "cosine", "cosine_s": 0.01, "p2_k": 1.0, "p2_gamma": 0.5}
    train(TrainConfig(arch="classical", subset=16, batch_size=16, max_steps=1, grid_images=2, grid_ddim_steps=2,
                      schedule=schedule), tmp_path / "run", data_dir, show_progress=False)  # fmt: skip
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "run" / "checkpoint.pt")
    assert pipe.schedule == ScheduleConfig(**schedule) and pipe.scheduler.timesteps == 40
    assert pipe.steps_per_batch("ddpm", 50) == 40
    folder = pipe.save_pretrained(tmp_path / "p")
    assert DiffusionPipeline.from_pretrained(folder).schedule == pipe.schedule


def test_checkpoints_of_the_previous_release_still_load(tiny_checkpoint, tmp_path):
    ckpt = torch.load(tiny_checkpoint("classical"), weights_only=True)
    old = {**ckpt, "arch_config": {"name": "classical"}, "config": {**ckpt["config"]}}
    old["config"]["device"] = old["config"].pop("torch_device")  # the earlier layout: no schedule, "device"
    del old["config"]["schedule"], old["command"]
    torch.save(old, tmp_path / "old.pt")
    model, schedule, info = load_model(tmp_path / "old.pt")
    assert schedule == ScheduleConfig() and info["training"]["torch_device"] == "cpu" and info["command"] is None
    assert all(torch.equal(v, ckpt["ema"][k]) for k, v in model.state_dict().items())


def test_bad_models_name_the_file(tiny_checkpoint, tmp_path):
    folder = DiffusionPipeline.from_pretrained(tiny_checkpoint("classical")).save_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="holds architecture 'classical', expected '1hqconv'"):
        DiffusionPipeline.from_pretrained(folder, expect_arch="1hqconv")
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "arch": "1hqconv"}))  # another architecture's label
    with pytest.raises(CheckpointError, match="weights do not fit architecture '1hqconv'"):
        DiffusionPipeline.from_pretrained(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        DiffusionPipeline.from_pretrained(folder)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="lacks model.safetensors"):
        DiffusionPipeline.from_pretrained(folder)
    no_ema = {k: v for k, v in torch.load(tiny_checkpoint("classical"), weights_only=True).items() if k != "ema"}
    torch.save(no_ema, tmp_path / "no_ema.pt")
    with pytest.raises(CheckpointError, match="lacks ema"):
        DiffusionPipeline.from_pretrained(tmp_path / "no_ema.pt")


def test_transfer_learning_from_a_pretrained_folder(tiny_checkpoint, tmp_path):
    from nisqdiff.models import UNet
    from nisqdiff.training import transfer_from_classical

    folder = DiffusionPipeline.from_pretrained(tiny_checkpoint("classical")).save_pretrained(tmp_path / "c")
    model = UNet("1fqconv")
    copied = transfer_from_classical(model, folder)
    ema = load_checkpoint(tiny_checkpoint("classical"))["ema"]
    assert copied and all(torch.equal(model.state_dict()[n], ema[n]) for n in copied)


def test_bf16_sampling_is_close_to_fp32_and_recorded(tiny_checkpoint, tmp_path):
    """--precision bf16 runs the classical layers under autocast: images near the fp32 ones (not equal),
    the precision in samples.json; a bad precision is a usage error before anything is written."""
    runner, ckpt = CliRunner(), tiny_checkpoint("1hqconv")
    images = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--num", "3", "--steps", "3", "--out", str(out),
                                  "--precision", precision])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert json.loads((out / "samples.json").read_text())["precision"] == precision
        images[precision] = torch.load(out / "samples.pt", weights_only=True)["images"]
    gap = (images["bf16"] - images["fp32"]).abs().mean()  # a few pixels may flip through the x0 clamp
    assert 0 < gap < 0.1
    res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--out", str(tmp_path / "bad"), "--precision", "fp16"])
    assert res.exit_code == 2 and "--precision" in res.output and not (tmp_path / "bad").exists()
