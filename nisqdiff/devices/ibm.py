"""IBM Quantum through qiskit-ibm-runtime's V2 primitives, resumable through a run manifest.

Backends are found by :func:`nisqdiff.backends.resolve_backend` (``fake_*``: local testing mode, no
account; other names: the saved IBM Quantum account). Circuits are transpiled once per set of weights
with qiskit's preset pass manager at optimization level 3 for the backend (calibration-aware VF2 layout
and post-layout). Every runtime call goes through :mod:`.runtime`.

Two primitives (``primitive``): the ``sampler`` (SamplerV2) measures bits, from which <Z_q> and its shot
standard error follow; the ``estimator`` (EstimatorV2) takes the 12 single-qubit Z observables mapped
through each circuit's layout and returns the expectation values and standard deviations itself, with
IBM's error mitigation (``resilience_level``, TREX, ZNE, twirling, dynamical decoupling) set through the
runtime's own options (``runtime_options``, dotted names as the runtime names them).

One circuit stage of one denoising step is one runtime job: one PUB per circuit with all N inputs,
split into several jobs only where ``max_executions_per_job`` (IBM's 10 million) requires it, so a run
submits (circuit stages) x (denoising steps) jobs whatever the number of images. Sampling's steps depend
on each other, so jobs run one after the other, in a Session where the plan has them (``auto``).

With a :class:`~nisqdiff.devices.manifest.RunManifest`, every job is recorded the moment it is submitted
(job id) and again when its result (raw bits, or evs and stds) is saved next to it with the quantum
seconds the runtime reports; a rerun with the same manifest reuses saved results, collects submitted
jobs by id instead of resubmitting them, and submits only what is left. A refused submission (QPU quota
used up, too many pending jobs) stops the run with the manifest consistent.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from ..backends import redact, resolve_backend
from ..circuits import ExpvalResult
from ..errors import DeviceError, UsageError
from ..files import atomic_write
from . import runtime
from .base import SamplerDevice, call_seed, check_shots, physical_qubits
from .manifest import RunManifest, now

STOPPED = {
    "quota": "the instance's QPU time is used up; once it is available again",
    "pending": "the plan's limit of pending jobs is reached; once a pending job has finished",
}


class IBMDevice(SamplerDevice):
    """IBM Quantum (or a fake backend in local testing mode) through the runtime's SamplerV2 or EstimatorV2.

    ``run`` submits one job per circuit stage (C PUBs of (N, n_qubits) inputs, ``shots`` each; for the
    estimator ``shots`` is its ``default_shots``), waits for it (``job_timeout`` seconds, None = no
    limit) and returns <Z_q> (N, n_qubits) with standard errors. ``mitigate_readout`` (sampler): True
    inverts the backend's reported assignment probabilities per measured qubit, "m3" runs M3
    (:mod:`.m3`: calibration circuits on the device, then each parameter set's counts corrected). ``runtime_options``: dotted
    runtime option names -> values, checked by :func:`.runtime.check_options`. ``plan``: the IBM plan
    (``open`` paces submissions at 5 jobs a minute and states its 10-minute limit in dry runs).
    ``manifest`` (a :class:`RunManifest`) makes the run resumable. Raises :class:`UsageError` for
    options the primitive does not take and :class:`DeviceError` as described in
    :func:`~nisqdiff.backends.resolve_backend`, for failed or timed-out jobs and refused submissions.
    """

    name = "ibm"

    def __init__(
        self,
        backend: str,
        shots: int = 1024,
        seed: int = 0,
        mitigate_readout: bool = False,
        optimization_level: int = 3,
        execution_mode: str = "auto",
        job_timeout: float | None = None,
        max_executions_per_job: int = 10_000_000,
        primitive: str = "sampler",
        runtime_options: dict | None = None,
        plan: str = "open",
    ):
        if execution_mode not in runtime.EXECUTION_MODES:
            raise UsageError(f"unknown execution mode '{execution_mode}'; valid: {', '.join(runtime.EXECUTION_MODES)}")
        if plan not in runtime.PLAN_LIMITS:
            raise UsageError(f"unknown plan '{plan}'; valid: {', '.join(runtime.PLAN_LIMITS)}")
        if mitigate_readout not in (False, True, "m3"):
            raise UsageError(f"readout mitigation must be true, false or \"m3\", got {mitigate_readout!r}")
        if primitive == "estimator" and mitigate_readout:
            raise UsageError("--mitigate-readout is the sampler's; the estimator mitigates readout itself (resilience_level 1: TREX)")
        self.primitive, self.plan = primitive, plan
        self.runtime_options = dict(runtime_options or {})
        runtime.check_options(primitive, self.runtime_options)  # before the backend: a bad option needs no account
        self.backend, self.service, self.local = resolve_backend(backend)
        config = self.backend.configuration() if hasattr(self.backend, "configuration") else None
        self.rep_delay_range = tuple(getattr(config, "rep_delay_range", None) or ()) or None
        self.default_rep_delay = getattr(config, "default_rep_delay", None) or 250e-6
        self.options = runtime.check_options(primitive, self.runtime_options, self.rep_delay_range)
        self.shots, self.seed = check_shots(shots), seed
        self.mitigate_readout, self.optimization_level = mitigate_readout, optimization_level
        self.execution_mode, self.job_timeout = execution_mode, job_timeout
        self.max_executions_per_job = max_executions_per_job
        self.manifest: RunManifest | None = None
        self.jobs_submitted = 0
        self.mode_used = None
        self._next_job = 0
        self._mode = self._primitive = None
        self._submitted_at: list[float] = []
        self.measure = primitive == "sampler"  # the estimator measures its observables itself
        self.transpile_key = ("ibm", self.backend.name, optimization_level, self.measure)
        self._snapshot = None
        self._m3 = None

    def settings(self) -> dict:
        return {
            "device": self.name,
            "backend": self.backend.name,
            "local_testing_mode": self.local,
            "primitive": self.primitive,
            "shots": self.shots,
            "seed": self.seed,
            "optimization_level": self.optimization_level,
            "execution_mode": self.execution_mode,
            "mitigate_readout": self.mitigate_readout,
            "runtime_options": self.runtime_options,
            "plan": self.plan,
            "calibration": self.calibration_id(),
        }

    def snapshot(self) -> dict:
        """The backend's calibration now (:func:`~nisqdiff.calibration.snapshot_from_backend`), read once."""
        from ..calibration import snapshot_from_backend

        if self._snapshot is None:
            self._snapshot = snapshot_from_backend(self.backend, origin="backend properties at run time")
        return self._snapshot

    def calibration_id(self) -> str:
        """The ID of the calibration the run is planned with: backend name and calibration date."""
        return f"{self.backend.name}@{self.snapshot()['calibration_date']}"

    def _transpile(self, circuit):
        from qiskit.transpiler import generate_preset_pass_manager

        pm = generate_preset_pass_manager(optimization_level=self.optimization_level, backend=self.backend, seed_transpiler=0)
        return pm.run(circuit)

    def rep_delay(self) -> float:
        """The repetition delay (s) of every shot: ``execution.rep_delay`` or the backend's default."""
        return self.runtime_options.get("execution.rep_delay", self.default_rep_delay)

    def measure_seconds(self, qubits=None) -> float:
        """The longest measurement (s) on ``qubits`` (physical; None: any qubit) of the backend."""
        target = self.backend.target
        if "measure" not in target.operation_names:
            return 0.0
        props = target["measure"]
        return max((props[(q,)].duration or 0.0) for q in (qubits if qubits is not None else range(target.num_qubits)))

    def circuit_seconds(self, circuit) -> float:
        """Scheduled duration (s) of one shot of ``circuit`` (with its measurement, which the estimator's
        circuits leave to the runtime) plus the repetition delay."""
        seconds = circuit.estimate_duration(self.backend.target, unit="s")
        if not self.measure:
            seconds += self.measure_seconds(physical_qubits(circuit, circuit.num_qubits))
        return seconds + self.rep_delay()

    def job_plan(self, n_circuits: int, rows: int) -> list[list[int]]:
        """Circuit indices of each job for one stage: all in one job unless the executions limit splits them."""
        if rows * self.shots > self.max_executions_per_job:
            raise DeviceError(
                f"{rows} inputs x {self.shots} shots exceed the backend's {self.max_executions_per_job:,} executions per job; "
                "lower --num or --shots"
            )
        per_job = self.max_executions_per_job // (rows * self.shots)
        return [list(range(i, min(i + per_job, n_circuits))) for i in range(0, n_circuits, per_job)]

    # --- execution -------------------------------------------------------------------------------

    def _open(self):
        if self._primitive is None:
            self._mode, self.mode_used = runtime.open_mode(self.backend, self.execution_mode)
            self._primitive = runtime.make_primitive(self.primitive, self._mode or self.backend, self.options)
            self._primitive.options.default_shots = self.shots
            ignored = [k for k in self.runtime_options if k.split(".")[0] in ("resilience_level", "resilience", "twirling", "dynamical_decoupling")]
            if self.local and ignored:
                print(f"nisqdiff: local testing mode ignores {', '.join(ignored)} (they apply on IBM hardware)", file=sys.stderr)
            if self.manifest is not None:
                self.manifest.data.update(execution_mode_used=self.mode_used, session_id=getattr(self._mode, "session_id", None))
                self.manifest.save()
        return self._primitive

    def close(self) -> None:
        if self._mode is not None:
            self._mode.close()
        self._mode = self._primitive = None

    def _pace(self) -> None:
        """The Open Plan creates at most 5 jobs a minute: wait until the next one is allowed."""
        if self.plan != "open" or self.local:
            return
        recent = [t for t in self._submitted_at if time.monotonic() - t < 60.0]
        if len(recent) >= runtime.OPEN_PLAN_JOBS_PER_MINUTE:
            time.sleep(max(0.0, 60.0 - (time.monotonic() - recent[0])))
        self._submitted_at = recent + [time.monotonic()]

    def _submit(self, pubs: list, index: int):
        prim = self._open()
        if self.local:  # reproducible local runs: the job's simulator seed follows its index
            runtime.set_seed(prim, call_seed(self.seed, index))
        self._pace()
        try:
            job = prim.run(pubs)
        except Exception as exc:  # noqa: BLE001 - the runtime's refusals come as several types
            reason = runtime.classify(exc)
            if reason not in STOPPED:
                raise
            if self.manifest is not None:
                self.manifest.set_status("stopped")
            where = f"continue with --resume {self.manifest.dir}" if self.manifest else "run again"
            raise DeviceError(redact(f"job {index} was not submitted: {STOPPED[reason]}, {where} (runtime: {exc})")) from None
        self.jobs_submitted += 1
        return job

    def _wait(self, job):
        if self.local:
            return job.result()
        return job.result(timeout=self.job_timeout)

    def _payload(self, result) -> dict:
        """What a finished job's result holds per PUB i: bits{i} and num_bits (sampler), or evs{i} and
        stds{i} (estimator)."""
        if self.primitive == "estimator":
            return {f"{k}{i}": np.asarray(getattr(r.data, k), dtype=np.float64) for i, r in enumerate(result) for k in ("evs", "stds")}
        bits = [r.data.meas for r in result]
        return {f"bits{i}": b.array for i, b in enumerate(bits)} | {"num_bits": np.array([b.num_bits for b in bits])}

    def _collect(self, job, entry: dict, values: list) -> dict:
        """Wait for ``job``; save its result, then mark its manifest entry done with the quantum seconds
        the runtime reports. Errors leave the entry submitted (timeout: collectable later) or failed
        (resubmitted on resume)."""
        from qiskit.providers import JobTimeoutError

        try:
            result = self._wait(job)
        except JobTimeoutError:
            where = f"; it stays in {self.manifest.path}, and --resume {self.manifest.dir} collects it" if self.manifest else ""
            raise DeviceError(f"job {entry['job_id']} did not finish within {self.job_timeout} s{where}") from None
        except Exception as exc:  # RuntimeJobFailureError, a cancelled job, the simulator's errors
            message = redact(str(exc)).strip("'\"").splitlines()
            entry.update(status="failed", error=message[0] if message else type(exc).__name__, finished=now())
            if self.manifest is not None:
                self.manifest.put_job(entry)
                self.manifest.set_status("failed")
            where = f"; finished jobs are kept, --resume {self.manifest.dir} resubmits this one" if self.manifest else ""
            raise DeviceError(f"job {entry['job_id']} on {self.backend.name} failed: {entry['error']}{where}") from None
        payload = self._payload(result)
        if self.manifest is not None:
            path = self.manifest.result_path(entry["index"])
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = payload | {f"inputs{i}": v for i, v in enumerate(values)}
            atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
            entry.update(status="done", finished=now(), result_file=str(path.relative_to(self.manifest.dir)),
                         quantum_seconds=runtime.job_usage(job))  # fmt: skip
            self.manifest.put_job(entry)
            self.manifest.data["quantum_seconds_total"] = sum(j.get("quantum_seconds") or 0.0 for j in self.manifest.data["jobs"])
            self.manifest.save()
        return payload

    def _saved(self, entry: dict, values: list) -> dict:
        """The payload of a finished job from the manifest, after checking it ran these inputs."""
        with np.load(self.manifest.dir / entry["result_file"]) as data:
            for i, v in enumerate(values):
                if data[f"inputs{i}"].shape != v.shape or not np.allclose(data[f"inputs{i}"], v, atol=1e-4):
                    raise DeviceError(
                        f"job {entry['index']} of {self.manifest.path} ran other inputs than this run: "
                        "the manifest belongs to another checkpoint or settings"
                    )
            payload = {k: data[k] for k in data.files if not k.startswith("inputs")}
        if self.primitive == "sampler" and "num_bits" not in payload:  # manifests of an earlier release
            payload["num_bits"] = np.array([8 * payload[f"bits{i}"].shape[-1] for i in range(len(values))])
        return payload

    def _job_payload(self, index: int, pubs: list, values: list) -> dict:
        """The result of one job: saved, collected by id, or submitted now."""
        entry = self.manifest.job(index) if self.manifest is not None else None
        if entry is not None and entry["status"] == "done":
            return self._saved(entry, values)
        job = None
        if entry is not None and entry["status"] == "submitted" and not self.local:
            job = self.service.job(entry["job_id"])  # paid for already: collect, do not resubmit
        if job is None:
            job = self._submit(pubs, index)
            entry = {"index": index, "job_id": job.job_id(), "status": "submitted", "submitted": now(), "primitive": self.primitive,
                     "pubs": len(pubs), "rows": int(values[0].shape[0]), "shots": self.shots}  # fmt: skip
            if self.manifest is not None:
                self.manifest.put_job(entry)
        return self._collect(job, entry, values)

    def _stage(self, circuits: list, values: list, make_pub) -> tuple[list[dict], dict]:
        """Run one circuit stage as jobs: the payload of each job and the job ids."""
        payloads, job_ids = [], []
        for group in self.job_plan(len(circuits), values[0].shape[0]):
            pubs = [make_pub(i) for i in group]
            payloads.append((group, self._job_payload(self._next_job, pubs, [values[i] for i in group])))
            if self.manifest is not None:
                job_ids.append(self.manifest.job(self._next_job)["job_id"])
            self._next_job += 1
        return payloads, {"job_ids": job_ids}

    def m3(self):
        """The run's :class:`~.m3.M3Readout` (``mitigate_readout="m3"``), its calibration kept in the manifest's folder."""
        from .m3 import M3Readout

        if self._m3 is None:
            cal_file = self.manifest.dir / "m3_calibration.json" if self.manifest is not None else None
            self._m3 = M3Readout(self.backend, cal_file, rep_delay=self.runtime_options.get("execution.rep_delay"))
        return self._m3

    def _execute(self, circuits: list, values: list) -> tuple[list, dict]:
        from qiskit.primitives.containers import BitArray

        if self.mitigate_readout == "m3":  # calibrate the qubits of this stage (those not calibrated yet) first
            self._open()
            self.m3().calibrate({q for c in circuits for q in physical_qubits(c, len(c.clbits))}, self._mode)
        payloads, meta = self._stage(circuits, values, lambda i: (circuits[i], values[i]))
        bits = [BitArray(p[f"bits{k}"], int(p["num_bits"][k])) for group, p in payloads for k in range(len(group))]
        return bits, meta

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        if self.primitive == "sampler":
            return super()._run(ansatz, inputs, weights)
        from ..circuits.qiskit_build import input_columns

        t0 = time.perf_counter()
        circuits = [self.transpiled(ansatz, w) for w in weights]
        t1 = time.perf_counter()
        values = [x.double().numpy()[:, input_columns(c)] for c, x in zip(circuits, inputs)]
        observables = [z_observables(c, inputs.shape[-1]) for c in circuits]
        # parameter values (N, 1, p) broadcast against the observables (n,): evs (N, n)
        payloads, meta = self._stage(circuits, values, lambda i: (circuits[i], observables[i], values[i][:, None, :]))
        evs = [p[f"evs{k}"] for group, p in payloads for k in range(len(group))]
        stds = [p[f"stds{k}"] for group, p in payloads for k in range(len(group))]
        meta = {**meta, "transpile_seconds": t1 - t0}
        return ExpvalResult(torch.from_numpy(np.stack(evs)), torch.from_numpy(np.stack(stds)), meta,
                            [dict(c.metadata) for c in circuits])  # fmt: skip

    def _expvals(self, circuit, bits, n_qubits: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mitigate_readout != "m3":
            return super()._expvals(circuit, bits, n_qubits)
        evs, stds = self.m3().expvals(bits, physical_qubits(circuit, n_qubits))
        return torch.from_numpy(evs), torch.from_numpy(stds)

    def _readout_errors(self, physical: list[int]):
        from ..calibration import readout_errors

        return readout_errors(self.snapshot(), physical) if self.mitigate_readout is True else None


def z_observables(circuit, n_qubits: int) -> list:
    """The single-qubit observables Z_q (q < ``n_qubits``, logical) of a transpiled ``circuit``, mapped
    through its layout (initial layout and routing permutation) onto the backend's qubits:
    ``SparsePauliOp.apply_layout``, as the runtime's estimator expects ISA observables."""
    from qiskit.quantum_info import SparsePauliOp

    ops = [SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits=n_qubits) for q in range(n_qubits)]
    return [op.apply_layout(circuit.layout) if circuit.layout is not None else op for op in ops]
