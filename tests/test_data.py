import gzip
import shutil

import pytest
import torch

from nisqdiff.data import DataError, load_images, locate, read_idx


def test_real_mnist_and_fashion(data_dir):
    x, y = load_images("mnist", "train", data_dir, subset=1000)
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    xt, yt = load_images("fashion-mnist", "test", data_dir)
    assert xt.shape == (10000, 1, 28, 28) and set(yt.tolist()) == set(range(10))


def test_environment_variable_is_searched(data_dir, monkeypatch):
    monkeypatch.setenv("NISQDIFF_DATA", str(data_dir))
    assert locate("mnist") == data_dir / "mnist"


def _copy_mnist(data_dir, tmp_path):
    dest = tmp_path / "data" / "mnist"
    shutil.copytree(data_dir / "mnist", dest)
    return dest


def test_truncated_gzip_names_the_file(data_dir, tmp_path):
    dest = _copy_mnist(data_dir, tmp_path)
    victim = dest / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_images("mnist", "test", tmp_path / "data")


def test_raw_file_with_flipped_byte_fails_checksum(data_dir, tmp_path):
    dest = _copy_mnist(data_dir, tmp_path)
    gz = dest / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(gz.read_bytes()))
    raw[100] ^= 0xFF
    gz.unlink()
    (dest / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*SHA-256"):
        load_images("mnist", "test", tmp_path / "data")


def test_short_payload_is_an_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(5))
    with pytest.raises(DataError, match="x-idx3-ubyte.*header promises 24"):
        read_idx(path)


def test_missing_data_lists_places_and_fix(tmp_path):
    with pytest.raises(DataError) as err:
        load_images("mnist", "train", None)
    msg = str(err.value)
    assert "mnist not found in" in msg and "--data-dir ../shared/data" in msg and "download failed" in msg


def test_unknown_dataset_and_bad_subset(data_dir):
    with pytest.raises(ValueError, match="valid names: mnist, fashion-mnist"):
        load_images("cifar", "train", data_dir)
    with pytest.raises(ValueError, match="subset"):
        load_images("mnist", "train", data_dir, subset=0)


class _FakeResponse:
    def __init__(self, payload: bytes):
        self.payload, self.done = payload, False

    def read(self, n=-1):
        if self.done:
            return b""
        self.done = True
        return self.payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_and_places_files(data_dir, tmp_path, monkeypatch):
    served = []

    def fake_urlopen(url, timeout=None):
        served.append(url)
        return _FakeResponse((data_dir / "mnist" / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    folder = locate("mnist")  # nothing local: downloads into the (temporary) user cache
    assert folder == tmp_path / "cache" / "nisqdiff" / "mnist" and len(served) == 4
    assert all(u.startswith("https://") and u.endswith(".gz") for u in served)
    x, _ = load_images("mnist", "test")
    assert x.shape == (10000, 1, 28, 28)


def test_corrupt_download_leaves_nothing(data_dir, tmp_path, monkeypatch):
    def truncated(url, timeout=None):
        return _FakeResponse((data_dir / "mnist" / url.rsplit("/", 1)[1]).read_bytes()[:-500])

    monkeypatch.setattr("urllib.request.urlopen", truncated)
    with pytest.raises(DataError, match="download failed"):
        locate("mnist")
    assert not list((tmp_path / "cache" / "nisqdiff" / "mnist").glob("*"))


def test_class_aware_selection():
    import numpy as np

    from nisqdiff.data import select
    from nisqdiff.errors import UsageError

    labels = np.array([3, 1, 3, 0, 1, 3, 2, 1, 0, 3])
    assert select(labels).tolist() == list(range(10))
    assert select(labels, subset=4).tolist() == [0, 1, 2, 3]
    assert select(labels, classes=[3]).tolist() == [0, 2, 5, 9]
    assert select(labels, classes=[3], subset=2).tolist() == [0, 2]
    assert select(labels, per_class=1).tolist() == [0, 1, 3, 6]  # the first image of each class
    assert select(labels, classes=[1, 0], per_class=2).tolist() == [1, 3, 4, 8]  # dataset order, 2 of each
    with pytest.raises(UsageError, match="--classes 7 not in"):
        select(labels, classes=[7])
    with pytest.raises(UsageError, match="--per-class 2 exceeds the 1 images of class 2"):
        select(labels, per_class=2)


def test_training_on_one_digit_writes_its_images(data_dir, tmp_path):
    import json

    from nisqdiff.data import load_selection
    from nisqdiff.training import TrainConfig, train

    train(TrainConfig(arch="classical", classes=[3], per_class=12, batch_size=4, max_steps=1, grid_images=0), tmp_path, data_dir,
          show_progress=False)  # fmt: skip
    chosen = json.loads((tmp_path / "training_images.json").read_text())
    _, labels, indices = load_selection("mnist", "train", data_dir, classes=[3], per_class=12)
    assert chosen["indices"] == indices.tolist() and len(indices) == 12 and (labels == 3).all()
    from typer.testing import CliRunner

    from nisqdiff.cli import app

    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--num", "4", "--steps", "1",
                                   "--num-real", "20", "--data-dir", str(data_dir), "--out", str(tmp_path / "m.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m.json").read_text())["reference_classes"] == [3]  # the model's own classes by default


def _npz(path, channels=1, n=20, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (n, 28, 28) if channels == 1 else (n, 28, 28, 3)
    arrays = {f"{s}_images": rng.integers(0, 256, shape, dtype=np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": (np.arange(n) % 2).reshape(n, 1).astype(np.uint8) for s in ("train", "val", "test")}
    np.savez(path, **arrays)
    return arrays


def test_medmnist_npz_loader(tmp_path, monkeypatch):

    from nisqdiff import medmnist
    from nisqdiff.data import load_selection

    arrays = _npz(tmp_path / "pneumoniamnist.npz")
    (tmp_path / "medmnist").mkdir()
    _npz(tmp_path / "medmnist" / "dermamnist.npz", channels=3)
    monkeypatch.setitem(medmnist.SETS, "pneumoniamnist", (medmnist.md5(tmp_path / "pneumoniamnist.npz"), 1, False))
    monkeypatch.setitem(medmnist.SETS, "dermamnist", (medmnist.md5(tmp_path / "medmnist" / "dermamnist.npz"), 3, False))
    x, labels, keep = load_selection("pneumoniamnist", "train", tmp_path, per_class=3)
    assert x.shape == (6, 1, 28, 28) and keep.tolist() == [0, 1, 2, 3, 4, 5] and labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.equal(x[0, 0], torch.from_numpy(arrays["train_images"][0]).float() / 127.5 - 1)
    rgb, _ = load_images("dermamnist", "test", tmp_path)
    assert rgb.shape == (20, 3, 28, 28) and -1 <= rgb.min() and rgb.max() <= 1
    with pytest.raises(ValueError, match="colour images and 1hqconv takes one channel: use --arch qbottleneck-rgb"):
        medmnist.check_trainable("dermamnist", "1hqconv")
    with pytest.raises(ValueError, match="use --arch bottleneck-q16-rgb"):
        medmnist.check_trainable("dermamnist", "bottleneck-q16")
    with pytest.raises(ValueError, match="grey images; --arch qbottleneck-rgb takes RGB: drop its -rgb"):
        medmnist.check_trainable("pneumoniamnist", "qbottleneck-rgb")
    medmnist.check_trainable("dermamnist", "qbottleneck-rgb")
    monkeypatch.setitem(medmnist.SETS, "pneumoniamnist", ("0" * 32, 1, False))  # the real checksum of another file
    with pytest.raises(DataError, match="fails its MD5 check"):
        load_images("pneumoniamnist", "train", tmp_path)


def test_medmnist_download_is_verified_before_it_lands(tmp_path, monkeypatch):
    import io

    from nisqdiff import medmnist

    _npz(tmp_path / "src.npz")
    payload = (tmp_path / "src.npz").read_bytes()
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: io.BytesIO(payload))
    good = medmnist.download("breastmnist", tmp_path / "cache", expected_md5=medmnist.md5(tmp_path / "src.npz"))
    assert good.read_bytes() == payload
    with pytest.raises(DataError, match="failed its MD5 check"):
        medmnist.download("octmnist", tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["breastmnist.npz"]  # nothing partial left
    monkeypatch.undo()


def test_medmnist_missing_offline(tmp_path):
    with pytest.raises(DataError, match="organamnist.npz not found in .* could not download"):
        load_images("organamnist", "train", tmp_path)
