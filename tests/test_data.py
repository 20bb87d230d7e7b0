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
