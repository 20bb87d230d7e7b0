import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real IDX files: $NISQDIFF_DATA or ../shared/data beside the repository."""
    path = Path(os.environ.get("NISQDIFF_DATA", SHARED_DATA))
    if not (path / "mnist").is_dir():
        pytest.fail(f"real MNIST not found at {path}; set NISQDIFF_DATA or put shared/data beside the repo")
    return path


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path):
    """No test reads the user's cache or downloads: the cache points into tmp and urlopen fails."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NISQDIFF_DATA", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    torch.manual_seed(0)


@pytest.fixture
def tiny_checkpoint(data_dir, tmp_path):
    """Factory: a checkpoint of ``arch`` after one training step on 16 images (fast, real data)."""
    from nisqdiff.training import TrainConfig, train

    def make(arch: str):
        out = tmp_path / f"tiny-{arch}"
        train(TrainConfig(arch=arch, subset=16, batch_size=16, max_steps=1, grid_images=0), out, data_dir, show_progress=False)
        return out / "checkpoint.pt"

    return make
