import pytest
import torch

from nisqdiff.data import load_images
from nisqdiff.metrics import compute_metrics, load_backbone
from nisqdiff.models import UNet
from nisqdiff.sampling import sample_images, save_grid


def test_sampling_shapes_range_and_seed():
    model = UNet("1fqconv")
    a = sample_images(model, 5, "ddim", steps=3, batch_size=3, seed=1)
    b = sample_images(model, 5, "ddim", steps=3, batch_size=3, seed=1)
    c = sample_images(model, 5, "ddim", steps=3, batch_size=3, seed=2)
    assert a.shape == (5, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="valid: ddpm, ddim"):
        sample_images(model, 1, "euler")


class Zero(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


def test_ddpm_runs_all_steps():
    steps = []
    out = sample_images(Zero(), 2, "ddpm", progress=lambda: steps.append(1))
    assert out.shape == (2, 1, 28, 28) and len(steps) == 1000


def test_grid_png(tmp_path):
    from PIL import Image

    path = save_grid(torch.rand(10, 1, 28, 28) * 2 - 1, tmp_path / "g.png")
    assert Image.open(path).size == (4 * 30 + 2, 3 * 30 + 2)


def test_metrics_separate_real_from_noise(data_dir):
    real, _ = load_images("mnist", "train", data_dir, subset=1200)
    test, _ = load_images("mnist", "test", data_dir, subset=400)
    good = compute_metrics(test, real, "classifier", "mnist", kid_subsets=20)
    bad = compute_metrics(torch.rand(400, 1, 28, 28) * 2 - 1, real, "classifier", "mnist", kid_subsets=20)
    assert good["backbone"]["name"] == "classifier" and good["backbone"]["test_accuracy"] >= 0.99
    assert good["fid"] < 0.2 * bad["fid"] and good["kid_mean"] < bad["kid_mean"]
    assert good["is_mean"] > 5 > bad["is_mean"]  # real digits are confidently and diversely classified
    assert good["kid_subset_size"] == 100 and good["is_splits"] == 10 and good["num_fake"] == 400


def test_inception_backbone_from_local_torchscript(tmp_path, data_dir):
    class FakeDetector(torch.nn.Module):
        """Same call signature as NVlabs' inception-2015-12-05.pt (random weights, no download)."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2048, 7, stride=7)
            self.fc = torch.nn.Linear(2048, 1008)

        def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False):
            f = self.conv(x.float() / 255).mean((2, 3))
            return f if return_features else torch.softmax(self.fc(f), dim=1)

    path = tmp_path / "inception.pt"
    torch.jit.script(FakeDetector()).save(str(path))
    feats, logits, desc = load_backbone("inception", "mnist", str(path))
    assert desc["name"] == "inception" and desc["weights"] == str(path) and len(desc["sha256"]) == 64
    real, _ = load_images("mnist", "train", data_dir, subset=60)
    res = compute_metrics(real[:30], real[30:], "inception", inception_path=str(path), kid_subsets=5)
    assert res["fid"] >= 0 and res["backbone"]["name"] == "inception" and res["is_mean"] >= 1
    with pytest.raises(FileNotFoundError, match="inception-2015-12-05.pt"):
        load_backbone("inception", "mnist", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="valid: classifier, inception"):
        load_backbone("vgg", "mnist")


def test_shipped_backbones_and_their_records():
    import hashlib

    from nisqdiff.metrics import backbone_dir, load_classifier

    for dataset, floor in (("mnist", 0.99), ("fashion-mnist", 0.90)):
        net, record = load_classifier(dataset)
        assert record["test_accuracy"] >= floor and record["test_images"] == 10000
        digest = hashlib.sha256((backbone_dir() / f"{dataset}.pt").read_bytes()).hexdigest()
        assert record["sha256"] == digest
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_fashion_backbone_recognises_real_test_images(data_dir):
    from nisqdiff.metrics import load_classifier

    net, _ = load_classifier("fashion-mnist")
    x, y = load_images("fashion-mnist", "test", data_dir, subset=500)
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.88
