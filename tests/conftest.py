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
    """No test reads the user's cache, data or IBM Quantum account, or downloads: the cache and data
    folders and the account file point into tmp, the account variables are unset and urlopen fails."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    for var in ("NISQDIFF_DATA", "NISQDIFF_CALIBRATIONS", "QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL",
                "QISKIT_IBM_URL"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(
        "qiskit_ibm_runtime.accounts.management._DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / "qiskit-ibm.json")
    )

    def offline(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_checkpoint(data_dir, tmp_path_factory):
    """Factory: the checkpoint of ``arch`` after one training step on 16 images (fast, real data),
    trained once per test session and shared (tests must not change it)."""
    from nisqdiff.training import TrainConfig, train

    made: dict = {}

    def make(arch: str):
        if arch not in made:
            out = tmp_path_factory.mktemp(f"tiny-{arch}")
            train(TrainConfig(arch=arch, subset=16, batch_size=16, max_steps=1, grid_images=0), out, data_dir,
                  show_progress=False)  # fmt: skip
            made[arch] = out / "checkpoint.pt"
        return made[arch]

    return make
