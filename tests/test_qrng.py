"""Quantum-generated noise: the extractor, the pool's Gaussians (KS, moments, serial correlation, fixed
seeds), reservations without reuse, and training and sampling from a pool drawn on a calibrated device."""

import json

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.qrng import Pool, PoolError, extract, von_neumann, write_pool

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def test_von_neumann_removes_a_fixed_bias():
    rng = np.random.default_rng(0)
    raw = (rng.random(400_000) < 0.8).astype(np.uint8)
    out = von_neumann(raw)
    n = len(out)
    assert abs(n / len(raw) - 0.8 * 0.2) < 0.005  # it keeps p(1-p) of the raw bits
    assert abs(out.mean() - 0.5) < 4 * 0.5 / np.sqrt(n)
    assert abs(np.corrcoef(out[:-1], out[1:])[0, 1]) < 4 / np.sqrt(n)
    assert von_neumann(np.array([0, 1, 1, 0, 0, 0, 1, 1, 1])).tolist() == [0, 1]


def _pool(path, n_bits, seed=1):
    bits = (np.random.default_rng(seed).random(n_bits) < 0.5).astype(np.uint8)
    write_pool(path, bits, {"device": {"device": "test"}})
    return Pool(path)


def test_pool_gaussians_pass_ks_moments_and_serial_correlation(tmp_path):
    pool = _pool(tmp_path / "p.npz", 32 * 200_000)
    z = pool.gaussians(0, pool.capacity).double().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    n = len(z)
    assert abs(z.mean()) < 4 / np.sqrt(n) and abs(z.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(stats.skew(z)) < 4 * np.sqrt(6 / n) and abs(stats.kurtosis(z)) < 4 * np.sqrt(24 / n)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 4 / np.sqrt(n)
    assert torch.equal(pool.gaussians(10, 5), pool.gaussians(0, 15)[10:])  # word k is always the same Gaussian


def test_reservations_never_overlap_or_wrap(tmp_path):
    pool = _pool(tmp_path / "p.npz", 32 * 1000)
    assert pool.reserve("run-a", 600) == 0 and pool.reserve("run-a", 600) == 0  # a resumed run: its own range
    with pytest.raises(PoolError, match="this run needs 16,000 bits of noise; .* has 12,800 left .* --bits 16000"):
        pool.reserve("run-b", 500)
    assert pool.reserve("run-c", 400) == 600
    with pytest.raises(PoolError, match="holds 1,000 Gaussians"):
        pool.gaussians(900, 101)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PoolError, match="unreadable"):
        Pool(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", provenance=json.dumps({"format": "x"}), n_bits=np.array(8), bits=np.zeros(1, np.uint8))
    with pytest.raises(PoolError, match="not a nisqdiff noise pool"):
        Pool(tmp_path / "other.npz")


@pytest.fixture(scope="module")
def device_pool(tmp_path_factory):
    """A pool measured on aer-noisy at fake_sherbrooke's calibration, von Neumann extracted."""
    path = tmp_path_factory.mktemp("pool") / "sherbrooke.npz"
    res = CliRunner().invoke(app, ["qrng", "--bits", str(32 * 60_000), "--out", str(path), "--device", "aer-noisy",
                                   "--calibration", "fake_sherbrooke", "--shots", "100000"])  # fmt: skip
    assert res.exit_code == 0, res.output
    return path


def test_qrng_on_a_calibrated_device(device_pool):
    pool = Pool(device_pool)
    prov = pool.provenance
    assert prov["device"]["calibration"] == "fake_sherbrooke" and prov["extractor"] == "von-neumann"
    assert pool.n_bits == 32 * 60_000 and len(prov["per_qubit"]) == 12
    raw_bias = max(abs(q["p1_raw"] - 0.5) for q in prov["per_qubit"])
    assert 0.002 < raw_bias < 0.05  # the readout errors' asymmetry biases every qubit a little
    z = pool.gaussians(0, pool.capacity).double().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3 and abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 4 / np.sqrt(len(z))


def test_emulator_bits_follow_the_exact_joint_distribution(tmp_path):
    """The emulator's qrng bits come from its exact per-qubit P(1); Aer's density matrix of the same
    transpiled circuit gives the same marginals and a joint distribution that is their product."""
    from nisqdiff.devices import EmulatorDevice
    from nisqdiff.devices.emulator import aer_exact_expval, aer_exact_probabilities
    from nisqdiff.qrng import exact_p1, hadamard_circuit

    dev = EmulatorDevice("fake_sherbrooke", noise_scale=5.0, shots=4096, method="exact")
    circuit = dev._transpile(hadamard_circuit())
    p1 = exact_p1(dev, circuit)
    zero = torch.zeros(1, 0, dtype=torch.float64)
    assert np.allclose(p1, (1 - aer_exact_expval(circuit, dev.snapshot, 5.0, zero)[0].numpy()) / 2, atol=1e-9)
    joint = aer_exact_probabilities(circuit, dev.snapshot, 5.0, zero)[0].numpy()  # before readout errors
    bare = (1 - aer_exact_expval(circuit, dev.snapshot, 5.0, zero, readout=False, probabilities=torch.tensor(joint[None]))[0].numpy()) / 2
    bits = (np.arange(4096)[:, None] >> np.arange(12)[None, :]) & 1
    product = np.prod(np.where(bits == 1, bare, 1 - bare), axis=1)
    assert np.abs(joint - product).max() < 1e-12 and 0.005 < np.abs(p1 - 0.5).max() < 0.1
    res = CliRunner().invoke(app, ["qrng", "--bits", "200000", "--out", str(tmp_path / "e.npz"), "--device", "emulator",
                                   "--calibration", "fake_sherbrooke", "--noise-scale", "5", "--shots", "4096"])  # fmt: skip
    assert res.exit_code == 0, res.output
    prov = Pool(tmp_path / "e.npz").provenance
    assert prov["device"]["method"] == "exact" and prov["device"]["noise_scale"] == 5.0
    assert np.allclose([q["p1_raw"] for q in prov["per_qubit"]], p1, atol=0.01)  # 8 x 4096 shots per qubit
    assert max(abs(q["p1_out"] - 0.5) for q in prov["per_qubit"]) < 0.02


@pytest.mark.parametrize("device", ["shots", "pennylane"])
def test_qrng_on_the_ideal_shots_device_and_a_pennylane_device(tmp_path, device):
    res = CliRunner().invoke(app, ["qrng", "--bits", "20000", "--shots", "4096", "--device", device, "--out", str(tmp_path / "p.npz")])
    assert res.exit_code == 0, res.output
    prov = Pool(tmp_path / "p.npz").provenance
    assert prov["device"]["device"] == device and prov["executions"] == 2
    assert max(abs(q["p1_raw"] - 0.5) for q in prov["per_qubit"]) < 4 * 0.5 / np.sqrt(2 * 4096)  # unbiased bits
    again = CliRunner().invoke(app, ["qrng", "--bits", "20000", "--shots", "4096", "--device", device, "--out", str(tmp_path / "q.npz")])
    assert again.exit_code == 0 and np.array_equal(np.load(tmp_path / "p.npz")["bits"], np.load(tmp_path / "q.npz")["bits"])  # seeded


def test_training_and_sampling_from_a_pool(device_pool, data_dir, tmp_path, tiny_checkpoint):
    runner = CliRunner()
    base = ["train", "--arch", "classical", "--subset", "8", "--batch-size", "4", "--grid-images", "0", "--data-dir", str(data_dir)]
    res = runner.invoke(app, [*base, "--max-steps", "2", "--noise-source", f"pool:{device_pool}", "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    ledger = json.loads(open(str(device_pool) + ".ledger.json").read())
    mine = [r for r in ledger["reservations"] if r["run"].endswith("q:train")]
    assert len(mine) == 1 and mine[0]["count"] == 2 * 4 * 784
    res = runner.invoke(app, [*base, "--max-steps", "2", "--out", str(tmp_path / "p")])
    q_ckpt, p_ckpt = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("q", "p"))
    assert q_ckpt["config"]["noise_source"] == f"pool:{device_pool}" and q_ckpt["metrics"]["loss"] != p_ckpt["metrics"]["loss"]
    res = runner.invoke(app, [*base, "--max-steps", "2", "--noise-source", f"pool:{device_pool}", "--batch-size", "8",
                              "--subset", "8", "--max-steps", "100000", "--out", str(tmp_path / "big")])  # fmt: skip
    assert res.exit_code == 2 and "bits of noise" in res.output and not (tmp_path / "big").exists()

    out = tmp_path / "s"
    res = runner.invoke(app, ["sample", "--checkpoint", str(tiny_checkpoint("classical")), "--num", "3", "--steps", "2",
                              "--noise-source", f"pool:{device_pool}", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "samples.json").read_text())
    assert meta["noise_source"]["gaussians"] == 3 * 784 and meta["noise_source"]["pool_device"]["calibration"] == "fake_sherbrooke"
    images = torch.load(out / "samples.pt", weights_only=True)["images"]
    assert images.shape == (3, 1, 28, 28) and torch.isfinite(images).all()


def test_qrng_dry_run_and_bad_input(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["qrng", "--bits", "1000000", "--out", str(tmp_path / "p.npz"), "--device", "ibm", "--backend",
                              "fake_guadalupe", "--dry-run"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "QPU time: about" in res.output and "one training run of 2,000 steps at batch 16 needs 802,816,000 bits" in res.output
    assert not (tmp_path / "p.npz").exists()
    for args, message in [(["--bits", "0"], "--bits must be at least 1"), (["--device", "noiseless"], "returns measured bits"),
                          (["--device", "pennylane", "--shots", "1"], "--shots must be at least 2"),
                          (["--extractor", "toeplitz"], "unknown extractor 'toeplitz'")]:  # fmt: skip
        res = runner.invoke(app, ["qrng", "--bits", "64", "--out", str(tmp_path / "x.npz"), *args])
        assert res.exit_code == 2 and message in res.output, (args, res.output)
    res = runner.invoke(app, ["train", "--noise-source", "quantum", "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "--noise-source takes pseudo or pool:PATH" in res.output
    res = runner.invoke(app, ["train", "--noise-source", f"pool:{tmp_path / 'none.npz'}", "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "does not exist" in res.output and not (tmp_path / "t").exists()
    assert extract(np.ones((12, 10), np.uint8), "none")[0].size == 120
