"""The ibm device end to end in qiskit-ibm-runtime's local testing mode (fake_guadalupe: 16 qubits,
the smallest fake backend that holds the 12-qubit circuits), its manifest, resume and errors."""

import json

import numpy as np
import pytest
import torch
from _helpers import run_one
from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError, RuntimeJobTimeoutError
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.devices import IBMDevice, RunManifest, make_device

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
BACKEND = "fake_guadalupe"


def _sample(ckpt, out, *extra):
    args = ["sample", "--checkpoint", str(ckpt), "--num", "2", "--steps", "2", "--device", "ibm", "--backend", BACKEND,
            "--shots", "32", "--out", str(out), *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def _images(out):
    return torch.load(out / "samples.pt", weights_only=True)["images"]


@pytest.fixture(scope="module")
def ibm_run(tmp_path_factory, tiny_checkpoint):
    """One uninterrupted 2-image, 2-step run of a tiny 1hqconv model: (checkpoint, run folder)."""
    ckpt = tiny_checkpoint("1hqconv")
    out = tmp_path_factory.mktemp("ibm") / "run"
    res = _sample(ckpt, out)
    assert res.exit_code == 0, res.output
    return ckpt, out


def test_ibm_local_run_end_to_end(ibm_run):
    _, out = ibm_run
    manifest = json.loads((out / "manifest.json").read_text())
    jobs = manifest["jobs"]
    assert manifest["status"] == "done" and manifest["device"]["backend"] == BACKEND
    assert len(jobs) == 4 * 2  # (circuit stages) x (denoising steps), whatever the number of images
    assert all(j["status"] == "done" and j["job_id"] and j["rows"] == 2 and j["pubs"] == 1 for j in jobs)
    assert len({j["job_id"] for j in jobs}) == 8
    with np.load(out / jobs[0]["result_file"]) as saved:
        assert saved["bits0"].shape == (2, 32, 2)  # the raw measured bits: (inputs, shots, bytes)
    meta = json.loads((out / "samples.json").read_text())
    assert meta["device"]["jobs_submitted_now"] == 8 and meta["device"]["local_testing_mode"] is True
    assert _images(out).shape == (2, 1, 28, 28) and torch.isfinite(_images(out)).all()


def test_interrupted_run_resumes_without_resubmitting(ibm_run, tmp_path, monkeypatch):
    ckpt, full = ibm_run
    calls = {"n": 0}
    original = IBMDevice._wait

    def crash_on_fourth(self, job):
        calls["n"] += 1
        if calls["n"] == 4:  # job 3 was submitted (and recorded) but its result never arrived
            raise KeyboardInterrupt
        return original(self, job)

    monkeypatch.setattr(IBMDevice, "_wait", crash_on_fourth)
    res = _sample(ckpt, tmp_path / "run")
    assert res.exit_code == 130 and "3 finished jobs are kept" in res.output and "--resume" in res.output
    statuses = [j["status"] for j in json.loads((tmp_path / "run" / "manifest.json").read_text())["jobs"]]
    assert statuses == ["done", "done", "done", "submitted"]
    monkeypatch.setattr(IBMDevice, "_wait", original)
    res = CliRunner().invoke(app, ["sample", "--resume", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "run" / "samples.json").read_text())
    assert meta["device"]["jobs_submitted_now"] == 5  # jobs 3..7; local jobs cannot be collected by id
    assert torch.equal(_images(tmp_path / "run"), _images(full))  # seeds follow the job index


@pytest.mark.parametrize("profile", ["ibm", "ibm-estimator"])
def test_submitted_job_is_collected_by_id_not_resubmitted(tmp_path, profile):
    from nisqdiff.circuits.qiskit_build import input_columns
    from nisqdiff.devices.ibm import z_observables

    device = make_device(profile, backend=BACKEND, shots=32)
    device.manifest = RunManifest.create(tmp_path, {"test": True}, device.settings())
    w, x = torch.rand(84, dtype=torch.float64), torch.rand(2, 12, dtype=torch.float64)
    first = run_one(device, "hqconv", w, x)
    entry = device.manifest.job(0)
    circuit = device.transpiled("hqconv", w)
    values = x.numpy()[:, input_columns(circuit)]
    pub = (circuit, values) if profile == "ibm" else (circuit, z_observables(circuit, 12), values[:, None, :])
    paid_for = device._submit([pub], 0).result()  # job 0 again, same seed
    entry["status"] = "submitted"  # as if the run stopped while job 0 was queued
    device.manifest.put_job(entry)

    class Service:  # a live service: job(id) returns the job that ran in our absence
        def job(self, job_id):
            assert job_id == entry["job_id"]
            return type("Job", (), {"result": lambda self, timeout=None: paid_for})()

    again = make_device(profile, backend=BACKEND, shots=32)
    again.manifest, again.local, again.service = RunManifest.load(tmp_path), False, Service()
    second = run_one(again, "hqconv", w, x)
    assert again.jobs_submitted == 0 and again.manifest.job(0)["status"] == "done"
    assert torch.equal(second.evs, first.evs)


def test_failed_and_timed_out_jobs(ibm_run, tmp_path, monkeypatch):
    ckpt, _ = ibm_run

    def fail(self, job):
        raise RuntimeJobFailureError("Job failed: calibration in progress")

    monkeypatch.setattr(IBMDevice, "_wait", fail)
    res = _sample(ckpt, tmp_path / "failed")
    assert res.exit_code != 0 and "failed: Job failed: calibration in progress" in res.output and "--resume" in res.output
    manifest = json.loads((tmp_path / "failed" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["jobs"][0]["status"] == "failed"

    def timeout(self, job):
        raise RuntimeJobTimeoutError("Timeout while waiting for job")

    monkeypatch.setattr(IBMDevice, "_wait", timeout)
    res = _sample(ckpt, tmp_path / "slow", "--job-timeout", "5")
    assert res.exit_code != 0 and "did not finish within 5.0 s" in res.output
    assert json.loads((tmp_path / "slow" / "manifest.json").read_text())["jobs"][0]["status"] == "submitted"


def test_ibm_errors(ibm_run, tmp_path):
    ckpt, full = ibm_run
    runner = CliRunner()
    before = (full / "manifest.json").read_text()
    for args, message in [
        (["--backend", "ibm_sherbrooke"], "no IBM Quantum account"),
        (["--backend", "fake_nowhere"], "unknown fake backend 'fake_nowhere'; valid: fake_algiers"),
        (["--backend", "fake_manila"], "backend 'fake_manila' has 5 qubits; the circuits need 12"),
        (["--backend", BACKEND, "--out", str(full)], "holds a finished sampling run, or choose another --out"),
        (["--backend", BACKEND, "--execution-mode", "dedicated"], "valid: auto, session, batch, job"),
    ]:
        res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--device", "ibm", "--out", str(tmp_path / "x"), *args])
        assert res.exit_code != 0 and message in res.output, (args, res.output)
    res = runner.invoke(app, ["sample", "--checkpoint", str(ckpt), "--dry-run"])
    assert res.exit_code != 0 and "applies to device kind ibm" in res.output
    res = runner.invoke(app, ["sample", "--resume", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "no run manifest" in res.output
    assert (full / "manifest.json").read_text() == before  # nothing already written was touched


def test_calibration_pull_saves_a_snapshot_found_by_name(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["calibration", "pull", "--backend", BACKEND])
    assert res.exit_code == 0, res.output
    listed = runner.invoke(app, ["calibration", "list"]).output
    name = next(line.split()[0] for line in listed.splitlines() if line.startswith(BACKEND))
    assert "16 qubits" in listed and make_device("aer-noisy", calibration=name, shots=16).snapshot["num_qubits"] == 16
    res = runner.invoke(app, ["calibration", "pull", "--backend", "ibm_kyiv"])
    assert res.exit_code != 0 and "no IBM Quantum account" in res.output
