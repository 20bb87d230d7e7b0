import json

import pytest
import torch

from nisqdiff.checkpoints import load_checkpoint
from nisqdiff.errors import CheckpointError
from nisqdiff.diffusion import GaussianDiffusion
from nisqdiff.models import UNet
from nisqdiff.training import EMA, TrainConfig, TrainingError, train, transfer_from_classical


def _cfg(**kw):
    base = dict(arch="1fqconv", subset=64, batch_size=16, max_steps=3, grid_images=0, ema_update_every=1, ema_update_after_step=2)
    base.update(kw)
    return TrainConfig(**base)


def _fixed_loss(model, images):
    with torch.no_grad():
        return GaussianDiffusion().loss(model, images, torch.Generator().manual_seed(123)).item()


def test_hybrid_training_lowers_loss(data_dir, tmp_path):
    from nisqdiff.data import load_images

    images, _ = load_images("mnist", "train", data_dir, subset=128)
    torch.manual_seed(0)
    before = _fixed_loss(UNet("1hqconv"), images)
    train(_cfg(arch="1hqconv", subset=128, max_steps=40), tmp_path / "run", data_dir, show_progress=False)
    model = UNet("1hqconv")
    model.load_state_dict(load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"])
    after = _fixed_loss(model, images)
    assert after < 0.6 * before, (before, after)


def test_resume_equals_uninterrupted(data_dir, tmp_path):
    train(_cfg(max_steps=6), tmp_path / "straight", data_dir, show_progress=False)
    train(_cfg(max_steps=3), tmp_path / "split", data_dir, show_progress=False)
    train(_cfg(max_steps=6), tmp_path / "split", data_dir, resume=True, show_progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    lines = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [3, 4, 6]
    # --resume without a new target keeps the run's own (6 steps): nothing left to do; it returns the last record
    done = train(_cfg(epochs=None, max_steps=None), tmp_path / "split", data_dir, resume=True, show_progress=False)
    assert done == lines[-1]
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 6


def test_transfer_copies_exactly_encoder_and_decoder(data_dir, tmp_path):
    train(_cfg(arch="classical", max_steps=2), tmp_path / "cls", data_dir, show_progress=False)
    source = load_checkpoint(tmp_path / "cls" / "checkpoint.pt")["model"]
    for arch in ("1hqconv", "classical"):
        torch.manual_seed(7)
        fresh = UNet(arch).state_dict()
        torch.manual_seed(7)
        model = UNet(arch)
        copied = transfer_from_classical(model, tmp_path / "cls" / "checkpoint.pt")
        state = model.state_dict()
        outside = [n for n in state if not n.startswith("mid_")]
        assert sorted(copied) == sorted(outside)
        for name in outside:
            assert torch.equal(state[name], source[name])
        for name in state:
            if name.startswith("mid_"):
                assert torch.equal(state[name], fresh[name])  # vertex freshly initialised
        assert any(not torch.equal(state[n], source[n]) for n in state if n.startswith("mid_") and n in source)


def test_transfer_from_hybrid_checkpoint_names_both(data_dir, tmp_path):
    train(_cfg(max_steps=1), tmp_path / "fq", data_dir, show_progress=False)
    with pytest.raises(CheckpointError, match="'1fqconv', expected 'classical'"):
        transfer_from_classical(UNet("1hqconv"), tmp_path / "fq" / "checkpoint.pt")


def test_freeze_classical_trains_only_circuits(data_dir, tmp_path):
    train(_cfg(arch="classical", max_steps=1), tmp_path / "cls", data_dir, show_progress=False)
    cfg = _cfg(max_steps=2, init_from=str(tmp_path / "cls" / "checkpoint.pt"), freeze_classical=True)
    train(cfg, tmp_path / "frozen", data_dir, show_progress=False)
    torch.manual_seed(cfg.seed)
    start = UNet("1fqconv")
    transfer_from_classical(start, tmp_path / "cls" / "checkpoint.pt", include_vertex=True)
    end = load_checkpoint(tmp_path / "frozen" / "checkpoint.pt")["model"]
    for name, value in start.state_dict().items():
        if name.endswith("circuits.weights"):
            assert not torch.equal(value, end[name]), name
        else:
            assert torch.equal(value, end[name]), name


def test_existing_run_is_not_overwritten(data_dir, tmp_path):
    train(_cfg(max_steps=1), tmp_path / "run", data_dir, show_progress=False)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(TrainingError, match="--resume.*--overwrite"):
        train(_cfg(max_steps=1), tmp_path / "run", data_dir, show_progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    with pytest.raises(TrainingError, match="--arch classical given but the run .* trains '1fqconv'"):
        train(_cfg(arch="classical", max_steps=2), tmp_path / "run", data_dir, resume=True, show_progress=False)
    train(_cfg(max_steps=1, seed=3), tmp_path / "run", data_dir, overwrite=True, show_progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["seed"] == 3


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    real_loss = GaussianDiffusion.loss
    calls = {"n": 0}

    def flaky(self, model, x0, generator=None, part=None, noise_source=None):
        calls["n"] += 1
        loss = real_loss(self, model, x0, generator, part, noise_source)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(GaussianDiffusion, "loss", flaky)
    with pytest.raises(TrainingError, match="loss became nan at step 6"):
        train(_cfg(max_steps=10), tmp_path / "run", data_dir, show_progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 4  # the epoch-end checkpoint (64 images / 16 per batch)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_ema_schedule():
    cfg = TrainConfig()
    ema = EMA(torch.nn.Linear(2, 2), cfg)
    assert ema.decay(100) == 0 and ema.decay(101) == 0
    assert abs(ema.decay(111) - (1 - 11 ** (-2 / 3))) < 1e-12
    assert ema.decay(10**6) == 0.995
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, 9)  # not a multiple of 10: nothing
    assert not torch.equal(ema.model.weight, model.weight)
    ema.update(model, 10)  # within the first 100 steps: copy
    assert torch.equal(ema.model.weight, model.weight)


def _kill_once(monkeypatch, name):
    """Make ``nisqdiff.training.<name>`` raise KeyboardInterrupt on its first call (a kill at that point)."""
    import nisqdiff.training as training

    real = getattr(training, name)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, name, dying)


def _without_times(path):
    return [{k: v for k, v in json.loads(x).items() if k not in ("wall_time", "images_per_s")} for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
    """An uninterrupted 6-step run with sample grids (epoch ends at steps 4 and 6)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(_cfg(max_steps=6, grid_images=2, grid_ddim_steps=2), out, data_dir, show_progress=False)
    return out


@pytest.mark.parametrize("kill_at", ["_save_grid", "_append_metrics"])
def test_a_kill_between_checkpoint_grid_and_metrics_is_completed_on_resume(kill_at, straight_run, data_dir, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    cfg = dict(grid_images=2, grid_ddim_steps=2)
    _kill_once(monkeypatch, kill_at)
    with pytest.raises(KeyboardInterrupt):  # killed right after the step-4 checkpoint was written
        train(_cfg(max_steps=6, **cfg), tmp_path / "killed", data_dir, show_progress=False)
    killed = tmp_path / "killed"
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 4 and not (killed / "metrics.jsonl").exists()
    (killed / "checkpoint.ptabc123.tmp").write_bytes(b"half a file")  # an interrupted atomic write's orphan
    train(_cfg(max_steps=6, **cfg), killed, data_dir, resume=True, show_progress=False)
    a, b = load_checkpoint(straight_run / "checkpoint.pt"), load_checkpoint(killed / "checkpoint.pt")
    assert all(torch.equal(a[k][n], b[k][n]) for k in ("model", "ema") for n in a[k])
    assert _without_times(killed / "metrics.jsonl") == _without_times(straight_run / "metrics.jsonl")
    assert [r["step"] for r in _without_times(killed / "metrics.jsonl")] == [4, 6]  # the lost line, exactly once
    for grid in ("samples_step000004.png", "samples_step000006.png"):
        assert (killed / grid).read_bytes() == (straight_run / grid).read_bytes()
    assert not list(killed.glob("*.tmp"))


def test_one_writer_per_run_folder(data_dir, tmp_path):
    import os

    from nisqdiff.errors import UsageError
    from nisqdiff.files import RunLock

    train(_cfg(max_steps=1), tmp_path / "run", data_dir, show_progress=False)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with RunLock(tmp_path / "run"):  # a run still going in this folder
        for kwargs in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(UsageError, match=f"in use by another nisqdiff run \\(PID {os.getpid()}\\)"):
                train(_cfg(max_steps=2), tmp_path / "run", data_dir, show_progress=False, **kwargs)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    train(_cfg(max_steps=2), tmp_path / "run", data_dir, resume=True, show_progress=False)  # free again
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_a_folder_that_never_reached_its_first_checkpoint_counts_as_empty(data_dir, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")  # a run killed before its first checkpoint
    train(_cfg(max_steps=1), tmp_path / "run", data_dir, show_progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 1


def test_a_kill_after_a_mid_epoch_checkpoint_resumes_to_the_uninterrupted_run(straight_run, data_dir, tmp_path, monkeypatch):
    import nisqdiff.training as training

    real, saved = training.save_checkpoint, []

    def save_then_die_at_step_3(path, config, model, ema_model, opt, step, *args):
        real(path, config, model, ema_model, opt, step, *args)
        saved.append(step)
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_die_at_step_3)
    cfg = dict(max_steps=6, grid_images=2, grid_ddim_steps=2, checkpoint_minutes=1e-9)  # a checkpoint after every step
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(**cfg), killed, data_dir, show_progress=False)
    assert saved == [1, 2, 3] and not (killed / "metrics.jsonl").exists() and not list(killed.glob("*.png"))
    ckpt = load_checkpoint(killed / "checkpoint.pt")
    assert ckpt["step"] == 3 and len(ckpt["partial_epoch"]["losses"]) == 3 and ckpt["metrics"] == {}
    monkeypatch.setattr(training, "save_checkpoint", real)
    train(_cfg(**cfg), killed, data_dir, resume=True, show_progress=False)
    a, b = load_checkpoint(straight_run / "checkpoint.pt"), load_checkpoint(killed / "checkpoint.pt")
    assert all(torch.equal(a[k][n], b[k][n]) for k in ("model", "ema") for n in a[k])
    # the epoch's mean loss covers its steps before the kill too; grids and lines only at epoch ends
    assert _without_times(killed / "metrics.jsonl") == _without_times(straight_run / "metrics.jsonl")
    assert sorted(p.name for p in killed.glob("*.png")) == ["samples_step000004.png", "samples_step000006.png"]
    with pytest.raises(Exception, match="checkpoint-minutes"):
        train(_cfg(checkpoint_minutes=-1), tmp_path / "bad", data_dir, show_progress=False)
    assert not (tmp_path / "bad").exists()


def test_default_precision_follows_the_device_and_is_kept_on_resume(data_dir, tmp_path, monkeypatch):
    import nisqdiff.training as training
    from nisqdiff.pipeline import native_bf16

    assert native_bf16("cpu") in (True, False) and native_bf16("meta") is False
    run = tmp_path / "run"
    monkeypatch.setattr(training, "native_bf16", lambda device: True)  # as on a CPU with AVX512-BF16
    train(_cfg(arch="classical", max_steps=1), run, data_dir, show_progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["config"]["amp"] is True
    monkeypatch.setattr(training, "native_bf16", lambda device: False)  # moved to a machine without it
    train(_cfg(arch=None, max_steps=2), run, data_dir, resume=True, show_progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["config"]["amp"] is True  # the run's own
    train(_cfg(arch=None, max_steps=3, amp=False), run, data_dir, resume=True, show_progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["config"]["amp"] is False  # given on resume: followed
    train(_cfg(arch="classical", max_steps=1), tmp_path / "fresh", data_dir, show_progress=False)
    assert load_checkpoint(tmp_path / "fresh" / "checkpoint.pt")["config"]["amp"] is False
