"""QPU readiness offline: the estimator path in local testing mode against Aer, the dry run's cost and
budget, the Open Plan's refused sessions, quota errors, usage in the manifest, calibration diff, and
credentials kept out of every output."""

import json

import numpy as np
import pytest
import torch
from _helpers import run_one
from typer.testing import CliRunner

from nisqdiff.cli import app
from nisqdiff.devices import IBMDevice, make_device, runtime

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
BACKEND = "fake_guadalupe"
TOKEN = "dummy-token-0123456789abcdef"


def _sample(ckpt, out, *extra):
    args = ["sample", "--checkpoint", str(ckpt), "--num", "2", "--steps", "2", "--device", "ibm", "--backend", BACKEND,
            "--shots", "32", "--out", str(out), *extra]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_estimator_matches_aer_within_its_standard_deviations():
    """EstimatorV2 in local testing mode (the fake backend's noise on Aer) against Aer's exact
    density-matrix <Z> of the same transpiled circuit and noise model, readout applied exactly."""
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    from nisqdiff.calibration import readout_errors
    from nisqdiff.circuits.qiskit_build import input_columns
    from nisqdiff.devices.ibm import z_observables

    device = make_device("ibm-estimator", backend=BACKEND, shots=2048)
    g = torch.Generator().manual_seed(3)
    w, x = torch.rand(16, generator=g, dtype=torch.float64) * 6, torch.rand(4, 4, generator=g, dtype=torch.float64) * 3
    res = run_one(device, "basic", w, x)
    circuit = device.transpiled("basic", w)
    assert not any(inst.operation.name == "measure" for inst in circuit.data)  # the estimator measures itself
    observables = z_observables(circuit, 4)
    assert [op.paulis[0].z.nonzero()[0].tolist() for op in observables] == [[q] for q in circuit.layout.final_index_layout()]
    aer = AerEstimator(options={"backend_options": {"method": "density_matrix", "noise_model": NoiseModel.from_backend(device.backend)}})
    values = x.numpy()[:, input_columns(circuit)]
    exact = aer.run([(circuit, observables, values[:, None, :])], precision=0).result()[0].data.evs
    ro = np.array(readout_errors(device.snapshot(), circuit.layout.final_index_layout()))
    p1 = (1 - exact) / 2
    measured = 1 - 2 * (p1 * (1 - ro[:, 1]) + (1 - p1) * ro[:, 0])
    z = (res.evs.numpy() - measured) / res.stds.numpy()
    assert res.stds.min() > 0.005 and np.abs(z).max() < 4.5 and 0.3 < (z**2).mean() < 2.5, z


@pytest.fixture(scope="module")
def estimator_run(tmp_path_factory, tiny_checkpoint):
    ckpt = tiny_checkpoint("1hqconv")
    out = tmp_path_factory.mktemp("est") / "run"
    res = _sample(ckpt, out, "--primitive", "estimator", "--resilience-level", "2")
    assert res.exit_code == 0, res.output
    return ckpt, out


def test_estimator_run_manifest_resume_and_options(estimator_run, tmp_path, monkeypatch):
    ckpt, out = estimator_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["device"]["primitive"] == "estimator" and manifest["device"]["runtime_options"] == {"resilience_level": 2}
    assert manifest["device"]["calibration"].startswith(f"{BACKEND}@") and (out / "calibration.json").is_file()
    jobs = manifest["jobs"]
    assert len(jobs) == 8 and all(j["status"] == "done" and j["primitive"] == "estimator" and j["quantum_seconds"] == 0 for j in jobs)
    with np.load(out / jobs[0]["result_file"]) as saved:
        assert saved["evs0"].shape == (2, 12) and saved["stds0"].shape == (2, 12) and (saved["stds0"] > 0).all()
    meta = json.loads((out / "samples.json").read_text())
    assert meta["device"]["execution_mode_used"] == "session" and meta["device"]["quantum_seconds_total"] == 0

    calls = {"n": 0}
    original = IBMDevice._wait

    def crash_on_third(self, job):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, job)

    monkeypatch.setattr(IBMDevice, "_wait", crash_on_third)
    res = _sample(ckpt, tmp_path / "run", "--primitive", "estimator", "--resilience-level", "2")
    assert res.exit_code == 130 and "2 finished jobs are kept" in res.output
    monkeypatch.setattr(IBMDevice, "_wait", original)
    res = CliRunner().invoke(app, ["sample", "--resume", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    again = torch.load(tmp_path / "run" / "samples.pt", weights_only=True)["images"]
    assert torch.equal(again, torch.load(out / "samples.pt", weights_only=True)["images"])


def test_dry_run_counts_mitigation_and_states_the_plan(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("1hqconv")
    base = ["sample", "--checkpoint", str(ckpt), "--device", "ibm", "--backend", BACKEND, "--dry-run", "--num", "64",
            "--steps", "50", "--shots", "1024", "--out", str(tmp_path / "dry")]  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    assert "jobs: 200 (auto), PUBs: 200, circuit executions: 12,800, total shots: 13,107,200" in res.output
    assert "open plan: 10 min of QPU time per rolling 28 days" in res.output and f"calibration: {BACKEND}@" in res.output
    sampler_minutes = float(res.output.split("estimated QPU time: ")[1].split(" min")[0])
    res = runner.invoke(app, [*base, "--primitive", "estimator", "--resilience-level", "2"])
    assert res.exit_code == 0, res.output
    assert "noise factors [1.0, 3.0, 5.0], 16 randomizations x 64 shots" in res.output
    assert "circuit executions: 614,400, total shots: 39,321,600" in res.output  # 12,800 x 3 factors x 16 instances
    zne_minutes = float(res.output.split("estimated QPU time: ")[1].split(" min")[0])
    assert 3 < zne_minutes / sampler_minutes < 9  # 3 factors, the folded circuits 1x, 3x and 5x as long
    res = runner.invoke(app, [*base, "--rep-delay", "100"])
    faster = float(res.output.split("estimated QPU time: ")[1].split(" min")[0])
    assert res.exit_code == 0 and faster < sampler_minutes * 0.6 and "rep_delay 100 us" in res.output
    assert not (tmp_path / "dry").exists()


def test_budget_refuses_and_names_what_fits(tiny_checkpoint, tmp_path):
    from nisqdiff.pipeline import DiffusionPipeline
    from nisqdiff.qpu_plan import largest_fitting, plan_run

    ckpt = tiny_checkpoint("1hqconv")
    res = CliRunner().invoke(app, ["sample", "--checkpoint", str(ckpt), "--device", "ibm", "--backend", BACKEND, "--num", "64",
                                   "--steps", "50", "--budget", "600", "--out", str(tmp_path / "b")])  # fmt: skip
    assert res.exit_code == 2 and "exceeds --budget 600 s; largest that fit (each alone): --num " in res.output
    assert not (tmp_path / "b").exists()
    pipe = DiffusionPipeline.from_pretrained(ckpt)
    device = make_device("ibm", backend=BACKEND)
    fit = largest_fitting(pipe, device, 64, 50, 1024, 600.0, "ddim")
    assert f"--num {fit['num']}, --steps {fit['steps']}, --shots {fit['shots']}" in res.output
    seconds = lambda n, s, k: plan_run(pipe, device, n, s, k)["qpu_seconds_estimate"]  # noqa: E731
    assert seconds(fit["num"], 50, 1024) <= 600 < seconds(fit["num"] + 1, 50, 1024)
    assert seconds(64, fit["steps"], 1024) <= 600 < seconds(64, fit["steps"] + 1, 1024)
    assert seconds(64, 50, fit["shots"]) <= 600 < seconds(64, 50, fit["shots"] + 1)


class _RefusingSession:
    def __init__(self, *args, **kwargs):
        raise runtime_error("'You are not authorized to run a session when using the open plan.'")


def runtime_error(message):
    from qiskit_ibm_runtime.exceptions import IBMRuntimeError

    return IBMRuntimeError(message)


def test_open_plan_session_refused_falls_back_to_job_mode(tiny_checkpoint, tmp_path, monkeypatch):
    import qiskit_ibm_runtime

    monkeypatch.setattr(qiskit_ibm_runtime, "Session", _RefusingSession)
    res = _sample(tiny_checkpoint("1hqconv"), tmp_path / "auto")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "auto" / "manifest.json").read_text())["execution_mode_used"] == "job"
    res = _sample(tiny_checkpoint("1hqconv"), tmp_path / "session", "--execution-mode", "session")
    assert res.exit_code == 2 and "refuses sessions" in res.output and "--execution-mode job or batch" in res.output


def test_quota_error_stops_cleanly_and_resumes(tiny_checkpoint, tmp_path, monkeypatch):
    from qiskit_ibm_runtime import SamplerV2

    original = SamplerV2.run
    calls = {"n": 0}

    def quota_on_fourth(self, pubs, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise runtime_error("Error code 4317: You have exceeded your monthly quota.")
        return original(self, pubs, **kwargs)

    monkeypatch.setattr(SamplerV2, "run", quota_on_fourth)
    monkeypatch.setattr(runtime, "job_usage", lambda job: 1.5)  # what a live runtime reports per job
    ckpt, out = tiny_checkpoint("1hqconv"), tmp_path / "run"
    res = _sample(ckpt, out)
    assert res.exit_code == 2 and "QPU time is used up" in res.output and f"--resume {out}" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and [j["status"] for j in manifest["jobs"]] == ["done"] * 3
    assert manifest["quantum_seconds_total"] == 4.5
    res = CliRunner().invoke(app, ["sample", "--resume", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["quantum_seconds_total"] == 12.0


def test_runtime_errors_are_classified():
    assert runtime.classify(runtime_error("You have reached the limit of 3 pending jobs.")) == "pending"
    assert runtime.classify(runtime_error("Error code 3458")) == "pending"
    assert runtime.classify(runtime_error("'You are not authorized to run a session when using the open plan.'")) == "session_refused"
    assert runtime.classify(runtime_error("Job failed: calibration in progress")) is None


def test_credentials_never_appear(tiny_checkpoint, tmp_path, monkeypatch):
    import qiskit_ibm_runtime

    class LeakyService:  # a runtime whose refusal echoes the token it was given
        def __init__(self, *args, **kwargs):
            raise RuntimeError(f"401 Unauthorized for token {TOKEN}")

    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", LeakyService)
    res = _sample(tiny_checkpoint("1hqconv"), tmp_path / "live", "--backend", "ibm_torino")
    assert res.exit_code == 2 and "could not reach IBM Quantum" in res.output and TOKEN not in res.output
    out = tmp_path / "local"
    res = _sample(tiny_checkpoint("1hqconv"), out)
    assert res.exit_code == 0 and TOKEN not in res.output
    assert all(TOKEN not in p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in (".json", ".txt"))


def test_calibration_diff(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["calibration", "diff", "fake_sherbrooke", "fake_kyiv", "--qubits", "0,1,2,3"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()[2:]}
    assert {"T1", "T2", "readout", "ecr", "sx"} <= set(rows)
    from nisqdiff.calibration import diff_snapshots, load_calibration

    a, b = load_calibration("fake_sherbrooke"), load_calibration("fake_kyiv")
    ecr = next(r for r in diff_snapshots(a, b, [0, 1, 2, 3]) if r["quantity"] == "ecr error")
    pairs = [g["error"] for g in a["gates"] if g["name"] == "ecr" and set(g["qubits"]) <= {0, 1, 2, 3}]
    assert ecr["worst_a"] == max(pairs) and ecr["median_a"] == float(np.median(pairs))
    same = runner.invoke(app, ["calibration", "diff", "fake_torino", "fake_torino"])
    assert same.exit_code == 0 and all(line.split()[-1] in ("+0%", "-") for line in same.output.splitlines()[2:])
    for args, message in [(["--qubits", "0,x"], "comma-separated"), (["--qubits", "500"], "not on both snapshots")]:
        res = runner.invoke(app, ["calibration", "diff", "fake_sherbrooke", "fake_kyiv", *args])
        assert res.exit_code == 2 and message in res.output and res.output.count("\n") == 1


def test_m3_removes_the_readout_bias():
    """M3 (calibrated on the fake backend in local testing mode) against Aer's exact <Z> without
    readout errors: closer than the raw counts, and within M3's standard-error bound."""
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    from nisqdiff.circuits.qiskit_build import input_columns
    from nisqdiff.devices.ibm import z_observables

    g = torch.Generator().manual_seed(3)
    w, x = torch.rand(16, generator=g, dtype=torch.float64) * 6, torch.rand(6, 4, generator=g, dtype=torch.float64) * 3
    raw = run_one(make_device("ibm", backend=BACKEND, shots=4000), "basic", w, x)
    device = make_device("ibm", backend=BACKEND, shots=4000, mitigate_readout="m3")
    m3 = run_one(device, "basic", w, x)
    assert device.m3().calibrations == 1 and device.m3().calibrated == set(device.transpiled("basic", w).layout.final_index_layout())
    circuit = device.transpiled("basic", w).remove_final_measurements(inplace=False)
    aer = AerEstimator(options={"backend_options": {"method": "density_matrix", "noise_model": NoiseModel.from_backend(device.backend)}})
    values = x.numpy()[:, input_columns(circuit)]
    exact = aer.run([(circuit, z_observables(circuit, 4), values[:, None, :])], precision=0).result()[0].data.evs
    assert np.abs(m3.evs.numpy() - exact).mean() < 0.8 * np.abs(raw.evs.numpy() - exact).mean()
    assert np.abs((m3.evs.numpy() - exact) / m3.stds.numpy()).max() < 4.5


def test_m3_run_keeps_its_calibration_for_resume_and_is_counted(tiny_checkpoint, tmp_path, monkeypatch):
    import mthree

    ckpt, out = tiny_checkpoint("1hqconv"), tmp_path / "m3"
    original = IBMDevice._wait
    calls = {"n": 0}

    def crash_in_second_step(self, job):  # every circuit's qubits were calibrated in the first step
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, job)

    monkeypatch.setattr(IBMDevice, "_wait", crash_in_second_step)
    res = _sample(ckpt, out, "--m3")
    assert res.exit_code == 130 and (out / "m3_calibration.json").is_file()
    monkeypatch.setattr(IBMDevice, "_wait", original)
    cal = (out / "m3_calibration.json").read_bytes()

    def no_recalibration(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(mthree.M3Mitigation, "cals_from_system", no_recalibration)
    res = CliRunner().invoke(app, ["sample", "--resume", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["device"]["mitigate_readout"] == "m3"
    assert (out / "m3_calibration.json").read_bytes() == cal
    dry = ["sample", "--checkpoint", str(ckpt), "--device", "ibm", "--backend", BACKEND, "--dry-run", "--num", "8", "--steps", "5",
           "--out", str(tmp_path / "dry")]  # fmt: skip
    plain, with_m3 = CliRunner().invoke(app, dry), CliRunner().invoke(app, [*dry, "--m3"])
    assert "M3 readout calibration: " in with_m3.output and ", 20,000 shots" in with_m3.output
    minutes = [float(r.output.split("estimated QPU time: ")[1].split(" min")[0]) for r in (plain, with_m3)]
    assert minutes[1] > minutes[0]
