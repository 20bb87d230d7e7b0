import pytest
import torch

from nisqdiff.data import load_images
from nisqdiff.diffusion import ScheduleConfig
from nisqdiff.errors import UsageError
from nisqdiff.images import save_grid
from nisqdiff.metrics import compute_metrics, load_backbone, score_image_sets
from nisqdiff.models import UNet
from nisqdiff.pipeline import DiffusionPipeline


def test_sampling_shapes_range_and_seed():
    pipe = DiffusionPipeline(UNet("1fqconv"))
    a = pipe(5, "ddim", steps=3, batch_size=3, seed=1)
    b = pipe(5, "ddim", steps=3, batch_size=3, seed=1)
    c = pipe(5, "ddim", steps=3, batch_size=3, seed=2)
    assert a.shape == (5, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(pipe(5, "ddim", steps=3, batch_size=3, seed=1, batches=[1]), a[3:])  # batch b alone
    with pytest.raises(UsageError, match="valid: ddpm, ddim"):
        pipe(1, "euler")
    with pytest.raises(UsageError, match="must be positive"):
        pipe(0)


class ZeroUNet(torch.nn.Module):
    arch = "zero"

    def forward(self, x, t):
        return torch.zeros_like(x)

    def set_executor(self, executor):
        pass


def test_ddpm_runs_every_step_of_the_saved_schedule():
    steps = []
    out = DiffusionPipeline(ZeroUNet())(2, "ddpm", progress=lambda: steps.append(1))
    assert out.shape == (2, 1, 28, 28) and len(steps) == 1000
    steps.clear()
    DiffusionPipeline(ZeroUNet(), ScheduleConfig(timesteps=50))(1, "ddpm", progress=lambda: steps.append(1))
    assert len(steps) == 50  # T comes from the schedule, not a constant


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


def test_paired_fid_intervals_rank_a_worse_set_and_cover_zero_between_equals(data_dir):
    real, _ = load_images("mnist", "train", data_dir, subset=1000)
    test, _ = load_images("mnist", "test", data_dir, subset=400)
    a, b = test[:200], test[200:]
    blurred = (a + 0.6 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    scores = score_image_sets({"a": a, "b": b, "noisy a": blurred}, real, bootstrap=30, reference="a", kid_subsets=10)
    worse, equal, same = scores["noisy a"], scores["b"], scores["a"]
    assert worse["fid_delta_ci_low"] > 0  # a known-worse set is ranked worse, beyond its interval
    assert equal["fid_delta_ci_low"] < 0 < equal["fid_delta_ci_high"]  # two samples of one distribution: 0 covered
    assert same["fid_delta"] == same["fid_delta_ci_low"] == same["fid_delta_ci_high"] == 0
    assert worse["fid_ci_low"] < worse["fid"] < worse["fid_ci_high"]
    with pytest.raises(UsageError, match="same number"):
        score_image_sets({"a": a, "b": b[:10]}, real)


def test_inception_backbone_from_local_torchscript(tmp_path, data_dir):
    class FakeDetector(torch.nn.Module):
        """Same call signature as NVlabs' inception-2015-12-05.pt (random weights, no download)."""

        def __init__(self):
            super().__init__()
            self.features = torch.nn.Linear(3 * 16, 2048)
            self.fc = torch.nn.Linear(2048, 1008)

        def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False):
            assert x.shape[-2:] == (299, 299)  # the backbone resizes for Inception itself
            f = self.features(torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1))
            return f if return_features else torch.softmax(self.fc(f), dim=1)

    path = tmp_path / "inception.pt"
    torch.jit.script(FakeDetector()).save(str(path))
    feats, logits, desc = load_backbone("inception", "mnist", str(path))
    assert desc["name"] == "inception" and desc["weights"] == str(path) and len(desc["sha256"]) == 64
    real, _ = load_images("mnist", "train", data_dir, subset=60)
    noise = torch.rand(30, 1, 28, 28) * 2 - 1
    scores = score_image_sets({"real": real[:30], "noise": noise}, real[30:], "inception", inception_path=str(path),
                              kid_subsets=5, bootstrap=0)  # fmt: skip
    assert scores["real"]["backbone"]["name"] == "inception" and scores["real"]["num_fake"] == 30
    assert scores["real"]["fid"] < scores["noise"]["fid"]  # even random Inception-shaped features rank real digits closer
    not_torchscript = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, not_torchscript)
    with pytest.raises(UsageError, match="not a TorchScript file"):
        load_backbone("inception", "mnist", str(not_torchscript))
    with pytest.raises(UsageError, match="inception-2015-12-05.pt"):
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


def test_scores_from_features_once_equal_torchmetrics_on_images(data_dir):
    """The backbone runs once per image; FID, KID and the bootstrap reuse its features. The result must be
    torchmetrics' own on the images, and the interval the one from scoring resampled images."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from nisqdiff.images import to_uint8

    real, _ = load_images("mnist", "train", data_dir, subset=600)
    fake, _ = load_images("mnist", "test", data_dir, subset=150)
    row = score_image_sets({"f": fake}, real, bootstrap=3, kid_subsets=4, kid_subset_size=50, seed=5)["f"]
    feats, _, _ = load_backbone("classifier", "mnist")
    fid = FrechetInceptionDistance(feature=feats, reset_real_features=False)
    kid = KernelInceptionDistance(feature=feats, subset_size=50, subsets=4, reset_real_features=False)
    for m in (fid, kid):
        m.update(to_uint8(real), real=True)
    torch.manual_seed(5)
    for m in (fid, kid):
        m.update(to_uint8(fake), real=False)
    assert row["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
    assert row["kid_mean"] == pytest.approx(float(kid.compute()[0]), rel=1e-6)
    gen = torch.Generator().manual_seed(5)
    boots = []
    for _ in range(3):
        fid.reset()
        fid.update(to_uint8(fake[torch.randint(150, (150,), generator=gen)]), real=False)
        boots.append(float(fid.compute()))
    assert row["fid_ci_low"] == pytest.approx(2 * row["fid"] - torch.tensor(boots).quantile(0.975).item(), rel=1e-5)
