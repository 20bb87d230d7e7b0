"""IBM Quantum through qiskit-ibm-runtime's SamplerV2, resumable through a run manifest.

Backends are found by :func:`nisqdiff.backends.resolve_backend` (``fake_*``: local testing mode, no
account; other names: the saved IBM Quantum account). Circuits are transpiled once per set of weights with qiskit's preset pass
manager at optimization level 3 for the backend (calibration-aware VF2 layout and post-layout).

One circuit stage of one denoising step is one runtime job: one PUB per circuit with all N inputs,
split into several jobs only where ``max_executions_per_job`` (IBM's 10 million for Sampler) requires
it, so a run submits (circuit stages) x (denoising steps) jobs whatever the number of images.
Sampling's steps depend on each other, so jobs run one after the other inside a runtime Session by
default (``execution_mode`` "batch" or "job" for plans without sessions).

With a :class:`~nisqdiff.devices.manifest.RunManifest`, every job is recorded the moment it is submitted (job id) and again when
its result (the raw measured bits) is saved next to it; a rerun with the same manifest reuses saved
results, collects submitted jobs by id instead of resubmitting them, and submits only what is left.
"""

from __future__ import annotations

import numpy as np

from ..backends import resolve_backend
from ..errors import DeviceError, UsageError
from ..files import atomic_write
from .base import SamplerDevice, call_seed, check_shots
from .manifest import RunManifest, now

EXECUTION_MODES = ("session", "batch", "job")


class IBMDevice(SamplerDevice):
    """IBM Quantum (or a fake backend in local testing mode) through ``qiskit_ibm_runtime.SamplerV2``.

    ``run`` submits one job per circuit stage (C PUBs of (N, n_qubits) inputs, ``shots`` each),
    waits for it (``job_timeout`` seconds, None = no limit) and maps the measured bits back through
    each circuit's final layout to <Z_q> (N, n_qubits) with standard errors. ``mitigate_readout``
    inverts the backend's reported assignment probabilities per measured qubit. ``manifest`` (a
    :class:`RunManifest`) makes the run resumable. Raises :class:`DeviceError` as described in
    :func:`~nisqdiff.backends.resolve_backend` and for failed or timed-out jobs.
    """

    name = "ibm"

    def __init__(
        self,
        backend: str,
        shots: int = 1024,
        seed: int = 0,
        mitigate_readout: bool = False,
        optimization_level: int = 3,
        execution_mode: str = "session",
        job_timeout: float | None = None,
        max_executions_per_job: int = 10_000_000,
    ):
        if execution_mode not in EXECUTION_MODES:
            raise UsageError(f"unknown execution mode '{execution_mode}'; valid: {', '.join(EXECUTION_MODES)}")
        self.backend, self.service, self.local = resolve_backend(backend)
        self.shots, self.seed = check_shots(shots), seed
        self.mitigate_readout, self.optimization_level = mitigate_readout, optimization_level
        self.execution_mode, self.job_timeout = execution_mode, job_timeout
        self.max_executions_per_job = max_executions_per_job
        self.manifest: RunManifest | None = None
        self.jobs_submitted = 0
        self._next_job = 0
        self._mode = None
        self._sampler = None
        self.transpile_key = ("ibm", self.backend.name, optimization_level)
        self._snapshot = None

    def settings(self) -> dict:
        return {
            "device": self.name,
            "backend": self.backend.name,
            "local_testing_mode": self.local,
            "shots": self.shots,
            "seed": self.seed,
            "optimization_level": self.optimization_level,
            "execution_mode": self.execution_mode,
            "mitigate_readout": self.mitigate_readout,
        }

    def _transpile(self, circuit):
        from qiskit.transpiler import generate_preset_pass_manager

        pm = generate_preset_pass_manager(optimization_level=self.optimization_level, backend=self.backend, seed_transpiler=0)
        return pm.run(circuit)

    def circuit_seconds(self, circuit) -> float:
        """Scheduled duration (s) of one shot of ``circuit`` plus the backend's repetition delay."""
        rep_delay = (
            getattr(self.backend.configuration(), "default_rep_delay", None) if hasattr(self.backend, "configuration") else None
        )
        return circuit.estimate_duration(self.backend.target, unit="s") + (rep_delay or 250e-6)

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
        from qiskit_ibm_runtime import Batch, SamplerV2, Session

        if self._sampler is None:
            if self.execution_mode == "session":
                self._mode = Session(backend=self.backend)
            elif self.execution_mode == "batch":
                self._mode = Batch(backend=self.backend)
            self._sampler = SamplerV2(mode=self._mode or self.backend)
            self._sampler.options.default_shots = self.shots
            if self.manifest is not None and self._mode is not None:
                self.manifest.data["session_id"] = getattr(self._mode, "session_id", None)
                self.manifest.save()
        return self._sampler

    def close(self) -> None:
        if self._mode is not None:
            self._mode.close()
        self._mode = self._sampler = None

    def _submit(self, pubs: list, index: int):
        sampler = self._open()
        if self.local:  # reproducible local runs: the job's simulator seed follows its index
            sampler.options.simulator.seed_simulator = call_seed(self.seed, index)
        self.jobs_submitted += 1
        return sampler.run(pubs)

    def _wait(self, job):
        if self.local:
            return job.result()
        return job.result(timeout=self.job_timeout)

    def _collect(self, job, entry: dict, values: list) -> list:
        """Wait for ``job``; save its raw bits, then mark its manifest entry done. Errors leave the
        entry submitted (timeout: collectable later) or failed (resubmitted on resume)."""
        from qiskit.providers import JobTimeoutError

        try:
            result = self._wait(job)
        except JobTimeoutError:
            where = f"; it stays in {self.manifest.path}, and --resume {self.manifest.dir} collects it" if self.manifest else ""
            raise DeviceError(f"job {entry['job_id']} did not finish within {self.job_timeout} s{where}") from None
        except Exception as exc:  # RuntimeJobFailureError, a cancelled job, the simulator's errors
            message = str(exc).strip("'\"").splitlines()
            entry.update(status="failed", error=message[0] if message else type(exc).__name__, finished=now())
            if self.manifest is not None:
                self.manifest.put_job(entry)
                self.manifest.set_status("failed")
            where = f"; finished jobs are kept, --resume {self.manifest.dir} resubmits this one" if self.manifest else ""
            raise DeviceError(f"job {entry['job_id']} on {self.backend.name} failed: {entry['error']}{where}") from None
        bits = [r.data.meas for r in result]
        if self.manifest is not None:
            path = self.manifest.result_path(entry["index"])
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f"bits{i}": b.array for i, b in enumerate(bits)} | {f"inputs{i}": v for i, v in enumerate(values)}
            arrays["num_bits"] = np.array([b.num_bits for b in bits])
            atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
            entry.update(status="done", finished=now(), result_file=str(path.relative_to(self.manifest.dir)))
            self.manifest.put_job(entry)
        return bits

    def _saved(self, entry: dict, values: list) -> list:
        """The raw bits (``BitArray`` per PUB) of a finished job from the manifest, after checking it
        ran these inputs."""
        from qiskit.primitives.containers import BitArray

        with np.load(self.manifest.dir / entry["result_file"]) as data:
            for i, v in enumerate(values):
                if data[f"inputs{i}"].shape != v.shape or not np.allclose(data[f"inputs{i}"], v, atol=1e-4):
                    raise DeviceError(
                        f"job {entry['index']} of {self.manifest.path} ran other inputs than this run: "
                        "the manifest belongs to another checkpoint or settings"
                    )
            # manifests of the previous release saved no bit count: every saved byte's bits then
            num_bits = [int(data["num_bits"][i]) if "num_bits" in data else 8 * data[f"bits{i}"].shape[-1] for i in range(len(values))]
            return [BitArray(data[f"bits{i}"], num_bits[i]) for i in range(len(values))]

    def _job_bits(self, index: int, circuits: list, values: list) -> list:
        """Bits for one job: saved, collected by id, or submitted now."""
        entry = self.manifest.job(index) if self.manifest is not None else None
        if entry is not None and entry["status"] == "done":
            return self._saved(entry, values)
        job = None
        if entry is not None and entry["status"] == "submitted" and not self.local:
            job = self.service.job(entry["job_id"])  # paid for already: collect, do not resubmit
        if job is None:
            job = self._submit([(c, v) for c, v in zip(circuits, values)], index)
            entry = {
                "index": index,
                "job_id": job.job_id(),
                "status": "submitted",
                "submitted": now(),
                "pubs": len(circuits),
                "rows": int(values[0].shape[0]),
                "shots": self.shots,
            }
            if self.manifest is not None:
                self.manifest.put_job(entry)
        return self._collect(job, entry, values)

    def _execute(self, circuits: list, values: list) -> tuple[list, dict]:
        bits: list = []
        job_ids = []
        for group in self.job_plan(len(circuits), values[0].shape[0]):
            bits += self._job_bits(self._next_job, [circuits[i] for i in group], [values[i] for i in group])
            if self.manifest is not None:
                job_ids.append(self.manifest.job(self._next_job)["job_id"])
            self._next_job += 1
        return bits, {"job_ids": job_ids}

    def _readout_errors(self, physical: list[int]):
        from ..calibration import readout_errors, snapshot_from_backend

        if not self.mitigate_readout:
            return None
        if self._snapshot is None:
            self._snapshot = snapshot_from_backend(self.backend, origin="backend properties at run time")
        return readout_errors(self._snapshot, physical)
