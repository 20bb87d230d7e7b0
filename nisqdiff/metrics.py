"""FID, KID and IS with torchmetrics on a recorded backbone (paper section 4.1).

InceptionV3 weights cannot be downloaded everywhere, so the default backbone is a small classifier
per dataset shipped with the package (``nisqdiff/backbones/<dataset>.pt``, trained by
``scripts/train_backbone.py``, test accuracy in ``<dataset>.json``): its 128-d penultimate
features feed FID and KID, its logits feed IS. ``inception`` uses a local TorchScript InceptionV3
(NVlabs' ``inception-2015-12-05.pt``, as in StyleGAN2-ADA/clean-fid) given by path, which resizes
its input to 299 x 299 itself. Scores from different backbones are not comparable, so every result
carries its backbone. :func:`score_image_sets` is the one metric set-up (``evaluate`` through
:func:`compute_metrics`, and the noise study with intervals).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UsageError, reason
from .files import file_sha256
from .images import to_uint8

BACKBONES = ("classifier", "inception")
INCEPTION_ENV = "NISQDIFF_INCEPTION"


class Classifier(nn.Module):
    """Small CNN for 28x28 grey images: (N, 1, 28, 28) float in [-1, 1] -> logits (N, 10).

    :meth:`features` gives the 128-d penultimate activations used for FID and KID.
    """

    num_features = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float (N, 1, H, W) in [-1, 1] (channels averaged)."""
    x = images.float() / 127.5 - 1
    return x.mean(1, keepdim=True) if x.shape[1] != 1 else x


class ClassifierFeatures(nn.Module):
    """torchmetrics feature extractor: uint8 images -> the classifier's penultimate features (N, 128)."""

    def __init__(self, net: Classifier, logits: bool = False):
        super().__init__()
        self.net, self.logits = net.eval(), logits
        self.num_features = 10 if logits else Classifier.num_features

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _to_unit(images)
        return self.net(x) if self.logits else self.net.features(x)


class InceptionFeatures(nn.Module):
    """torchmetrics feature extractor around NVlabs' TorchScript InceptionV3: uint8 (N, C, H, W) ->
    2048-d pool features, or (``logits=True``) log-probabilities over its 1008 classes for IS. Grey
    images are repeated to 3 channels (as the paper does) and resized bilinearly to ``image_size``."""

    def __init__(self, detector: torch.jit.ScriptModule, logits: bool = False, image_size: int = 299):
        super().__init__()
        self.detector, self.logits, self.image_size = detector, logits, image_size
        self.num_features = 1008 if logits else 2048

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)  # grey repeated to 3 channels, as the paper does
        if images.shape[-1] != self.image_size:
            size = (self.image_size, self.image_size)
            images = F.interpolate(images.float(), size=size, mode="bilinear").round().clamp(0, 255).to(torch.uint8)
        if self.logits:
            return self.detector(images, no_output_bias=True).clamp_min(1e-12).log()
        return self.detector(images, return_features=True)


def backbone_dir() -> Path:
    return Path(str(resources.files("nisqdiff") / "backbones"))


def load_classifier(dataset: str) -> tuple[Classifier, dict]:
    """The shipped classifier for ``dataset`` and its record (test accuracy, training command, sha256)."""
    folder = backbone_dir()
    weights, info = folder / f"{dataset}.pt", folder / f"{dataset}.json"
    if not weights.is_file():
        raise FileNotFoundError(f"no classifier backbone for {dataset} at {weights}; run scripts/train_backbone.py")
    net = Classifier()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    record = json.loads(info.read_text()) if info.is_file() else {}
    return net.eval(), record


def load_backbone(name: str, dataset: str, inception_path: str | None = None):
    """(features module, logits module, description dict) for backbone ``name``.

    ``classifier``: the shipped per-dataset CNN. ``inception``: a TorchScript InceptionV3 read from
    ``inception_path`` or ``$NISQDIFF_INCEPTION`` (never downloaded). Raises
    :class:`~nisqdiff.errors.UsageError` for an unknown backbone or missing Inception weights.
    """
    if name == "classifier":
        net, record = load_classifier(dataset)
        desc = {
            "name": "classifier",
            "dataset": dataset,
            "features": 128,
            **{k: record.get(k) for k in ("test_accuracy", "sha256")},
        }
        return ClassifierFeatures(net), ClassifierFeatures(net, logits=True), desc
    if name == "inception":
        path = inception_path or os.environ.get(INCEPTION_ENV)
        if not path or not Path(path).is_file():
            raise UsageError(
                f"inception backbone needs local TorchScript weights (inception-2015-12-05.pt): pass --inception-weights "
                f"PATH or set {INCEPTION_ENV}; got {path!r}"
            )
        try:
            detector = torch.jit.load(path, map_location="cpu").eval()
        except RuntimeError as exc:
            raise UsageError(f"inception weights {path} are not a TorchScript file: {reason(exc)}") from None
        sha = file_sha256(path)
        desc = {"name": "inception", "weights": str(path), "sha256": sha, "features": 2048}
        return InceptionFeatures(detector), InceptionFeatures(detector, logits=True), desc
    raise UsageError(f"unknown backbone '{name}'; valid: {', '.join(BACKBONES)}")


def compute_metrics(
    fake: torch.Tensor,
    real: torch.Tensor,
    backbone: str = "classifier",
    dataset: str = "mnist",
    inception_path: str | None = None,
    kid_subset_size: int = 100,
    kid_subsets: int = 100,
    is_splits: int = 10,
    seed: int = 0,
    bootstrap: int = 0,
) -> dict:
    """FID, KID (mean, std) and IS (mean, std) of ``fake`` against ``real``, both (N, 1, 28, 28) in
    [-1, 1]: :func:`score_image_sets` for one set, with a 95% bootstrap interval of FID if ``bootstrap``
    > 0. Returns the scores, the sample counts and the backbone description."""
    return score_image_sets({"fake": fake}, real, backbone, dataset, inception_path, bootstrap, None, kid_subset_size,
                            kid_subsets, is_splits, seed)["fake"]  # fmt: skip


class Features(nn.Module):
    """torchmetrics feature extractor for features already extracted: (N, D) -> (N, D) unchanged, so that
    FID and KID score precomputed backbone features (the bootstrap resamples them without running the
    backbone again)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def score_image_sets(
    fakes: dict[str, torch.Tensor],
    real: torch.Tensor,
    backbone: str = "classifier",
    dataset: str = "mnist",
    inception_path: str | None = None,
    bootstrap: int = 20,
    reference: str | None = None,
    kid_subset_size: int = 100,
    kid_subsets: int = 100,
    is_splits: int = 10,
    seed: int = 0,
    batch_size: int = 500,
) -> dict[str, dict]:
    """FID, KID and IS of several image sets against one reference set, with confidence intervals.

    ``fakes``: {label: (N, 1, 28, 28) in [-1, 1]}, the same N for every label; ``real`` likewise. Uses
    torchmetrics' FrechetInceptionDistance, KernelInceptionDistance (``kid_subset_size`` 100 as the
    paper) and InceptionScore (``is_splits`` 10) with the chosen backbone as feature extractor. The
    backbone's features of every image are extracted once (its logits, for IS, once more): FID and KID
    score them (the reference features are kept, ``reset_real_features=False``), and with ``bootstrap`` > 0 the 95% basic bootstrap interval of
    FID resamples those features (the generated images with replacement; 2 * FID minus the resampled
    quantiles: resampling duplicates images, which biases FID upwards, and the basic interval corrects
    for it). Per label: FID, KID mean and std over its subsets, IS mean and std over its splits, counts
    and the backbone description; with ``reference`` (a label of ``fakes`` made from the same seeds) the
    paired FID difference to it with its interval (the same resampled indices for both).
    :class:`~nisqdiff.errors.UsageError` for fewer than 2 images or unequal set sizes.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    n = len(next(iter(fakes.values())))
    if any(len(x) != n for x in fakes.values()):
        raise UsageError("every image set of a comparison needs the same number of images")
    if n < 2 or len(real) < 2:
        raise UsageError(f"FID needs at least 2 generated and 2 reference images, got {n} and {len(real)}")
    feats, logits, desc = load_backbone(backbone, dataset, inception_path)
    subset = min(kid_subset_size, n, len(real))
    local = {"sync_on_compute": False}  # scored by one process, also inside a distributed run (rank 0)
    passthrough = Features(feats.num_features)
    fid = FrechetInceptionDistance(feature=passthrough, normalize=False, reset_real_features=False, **local)
    kid = KernelInceptionDistance(feature=passthrough, subset_size=subset, subsets=kid_subsets, normalize=False,
                                  reset_real_features=False, **local)  # fmt: skip

    def extract(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        x = to_uint8(images)
        return torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    real_f = extract(feats, real)
    fid.update(real_f, real=True), kid.update(real_f, real=True)
    gen = torch.Generator().manual_seed(seed)
    resamples = [torch.randint(n, (n,), generator=gen) for _ in range(bootstrap)]

    def interval(value: float, boots: list[float]) -> tuple[float, float]:
        q = torch.tensor(boots, dtype=torch.float64).quantile(torch.tensor([0.025, 0.975], dtype=torch.float64))
        return 2 * value - float(q[1]), 2 * value - float(q[0])

    def fid_of(f: torch.Tensor) -> float:
        fid.reset()
        fid.update(f, real=False)
        return float(fid.compute())

    out, boots = {}, {}
    for label, images in fakes.items():
        f = extract(feats, images)
        value = fid_of(f)
        torch.manual_seed(seed)  # KID's subsets
        kid.reset()
        kid.update(f, real=False)
        kid_mean, kid_std = kid.compute()
        inc = InceptionScore(feature=Features(logits.num_features), splits=is_splits, normalize=False, **local)
        inc.update(extract(logits, images))
        is_mean, is_std = inc.compute()
        boots[label] = [fid_of(f[idx]) for idx in resamples]
        row = {"fid": value, "kid_mean": float(kid_mean), "kid_std": float(kid_std), "is_mean": float(is_mean),
               "is_std": float(is_std), "num_fake": n, "num_real": len(real), "kid_subset_size": subset,
               "is_splits": is_splits, "backbone": desc}  # fmt: skip
        if bootstrap:
            lo, hi = interval(value, boots[label])
            row.update(fid_ci_low=lo, fid_ci_high=hi, fid_bootstrap=bootstrap)
        out[label] = row
    if reference is not None and bootstrap:
        for label, row in out.items():
            delta = row["fid"] - out[reference]["fid"]
            lo, hi = interval(delta, [a - b for a, b in zip(boots[label], boots[reference])])
            row.update(fid_delta=delta, fid_delta_ci_low=lo, fid_delta_ci_high=hi)
    return out
