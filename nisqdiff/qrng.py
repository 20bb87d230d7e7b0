"""Quantum-generated diffusion noise (Chen et al., arXiv 2504.00034): random bits measured on a device,
debiased, stored as a pool with its provenance, and read as N(0, 1) noise without reuse.

**Measuring.** :func:`measure_bits` runs H on each of 12 qubits, then measures, on a device that returns
measured bits (kinds aer, aer-noisy and ibm: a SamplerV2 underneath) or on the ``emulator``: it computes
each qubit's exact noisy P(1) (its exact method, readout error included) and draws every shot's bits from
those, independently per qubit, which is the circuit's exact joint distribution because the transpiled
circuit has no two-qubit gate and every error of the calibration's noise model acts on one qubit (checked
against Aer's density matrix in the tests). Each qubit's bit stream is kept apart, because a noisy device
biases each qubit differently.

**Extracting.** :func:`von_neumann` (von Neumann 1951): per qubit, non-overlapping pairs 01 -> 0, 10 -> 1,
00 and 11 dropped. For independent bits of any fixed bias the output is unbiased and independent; it keeps
about p(1-p) of the pairs (a quarter of the raw bits at p = 1/2). :func:`min_entropy` states each qubit's
min-entropy per raw bit, -log2 max(p, 1 - p), before extraction.

**The pool** (``POOL.npz``): the extracted bits packed (``bits``, ``n_bits``) and the provenance (device,
its settings and calibration, shots, date, job ids, bias and min-entropy per qubit). Runs reserve disjoint
ranges of it in ``POOL.npz.ledger.json`` (under a file lock): a run that needs more than remains is refused
with the number of bits it needs, never wrapped around; a resumed run gets its own range again.

**Gaussians.** Word k of the reservation is the 32 bits 32k..32k+31 (little-endian); u = (k + 1/2) / 2^32 and
z = Phi^-1(u) (``torch.special.ndtri`` in float64): an exact inverse CDF of the discretised uniform, whose
tails stop at |z| = 6.34.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import torch

from .errors import NisqdiffError, UsageError
from .files import atomic_write, atomic_write_text

FORMAT = "nisqdiff-qrng-pool/1"
N_QUBITS = 12
WORD = 32  # bits per Gaussian
EXTRACTORS = ("von-neumann", "none")


class PoolError(NisqdiffError):
    """A pool that cannot serve a run: missing, unreadable, of another format, or too small."""


def von_neumann(bits: np.ndarray) -> np.ndarray:
    """Von Neumann's extractor on one stream of 0/1 bits (M,): non-overlapping pairs 01 -> 0 and 10 -> 1
    (the pair's first bit), 00 and 11 dropped. Returns the output bits (K,) uint8, K <= M / 2."""
    pairs = np.asarray(bits, dtype=np.uint8)[: len(bits) // 2 * 2].reshape(-1, 2)
    return pairs[pairs[:, 0] != pairs[:, 1], 0].copy()


def min_entropy(p1: float) -> float:
    """Min-entropy per bit (bits) of a source that gives 1 with probability ``p1``: -log2 max(p1, 1 - p1)."""
    return float(-np.log2(max(p1, 1.0 - p1)))


def hadamard_circuit(n_qubits: int = N_QUBITS):
    """H on every qubit, then every qubit measured: ideally 12 unbiased, independent bits per shot."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n_qubits, name="qrng")
    qc.h(range(n_qubits))
    qc.measure_all()
    return qc


def check_device(device) -> None:
    """:class:`UsageError` unless ``device`` returns measured bits (a SamplerV2 device: aer, aer-noisy,
    ibm), is the emulator (bits from its exact marginals), the shots device (the ideal circuit's P(1) = 1/2
    drawn with its generator) or a PennyLane device with finite shots (``qml.sample``)."""
    from .devices.base import SamplerDevice
    from .devices.pennylane import PennyLaneDevice
    from .devices.simulated import ShotsDevice

    name = device.settings().get("device", type(device).__name__)
    if isinstance(device, PennyLaneDevice) and device.shots is None:
        raise UsageError("qrng on a PennyLane device samples bits: give --shots N")
    if not isinstance(device, (SamplerDevice, ShotsDevice, PennyLaneDevice)):
        raise UsageError(f"qrng needs a device that returns measured bits (aer, aer-noisy, ibm, pennylane) or the "
                         f"emulator or shots device, not '{name}'")  # fmt: skip


def _pennylane_sampler(device):
    """The Hadamard circuit as a QNode on a PennyLane device: each call is one execution, (12, shots) uint8
    from ``qml.sample``."""
    import pennylane as qml

    @qml.qnode(device._device(N_QUBITS))
    def circuit():
        for q in range(N_QUBITS):
            qml.Hadamard(wires=q)
        return qml.sample(wires=range(N_QUBITS))

    sampled = qml.set_shots(circuit, shots=device.shots)
    return lambda: np.asarray(sampled(), dtype=np.uint8).reshape(-1, N_QUBITS).T.copy()


def exact_p1(device, circuit) -> np.ndarray:
    """The emulator's exact P(measured 1) (12,) of each qubit of the transpiled Hadamard ``circuit``, at
    the device's noise scale, readout error included. :class:`UsageError` if the circuit has a two-qubit
    gate (its bits would not be independent across qubits)."""
    from .circuits.heisenberg import compile_exact
    from .devices.emulator import emulator_program

    if any(len(i.qubits) > 1 for i in circuit.data if i.operation.name not in ("barrier", "measure")):
        raise UsageError("the emulator draws qrng bits from exact marginals only for circuits without two-qubit gates")
    z = compile_exact(emulator_program(circuit, device.snapshot, device.noise_scale)).expval(
        torch.zeros(1, 0, dtype=torch.float64), dtype=torch.float64)  # fmt: skip
    return ((1 - z[0].numpy()) / 2).clip(0, 1)


def measure_bits(device, raw_bits: int) -> tuple[np.ndarray, dict]:
    """At least ``raw_bits`` raw bits from the Hadamard circuit on ``device``: (bits (12, M) uint8, one
    stream per qubit; what was run: executions, shots, job ids). One execution of ``device.shots`` shots
    per call: qiskit-aer 0.17.2's own SamplerV2 (aer-noisy) returns all-zero bits for every parameter set of
    a circuit without parameters but the first. On the emulator an execution draws ``device.shots`` shots
    from :func:`exact_p1` with a generator seeded by the device's seed and call count."""
    from .devices.emulator import EmulatorDevice
    from .devices.pennylane import PennyLaneDevice
    from .devices.simulated import ShotsDevice

    check_device(device)
    streams, executions, job_ids = [], 0, []
    if isinstance(device, (ShotsDevice, PennyLaneDevice)):
        if isinstance(device, ShotsDevice):  # the ideal circuit: every qubit 1 with probability 1/2
            execute = lambda: (torch.rand(N_QUBITS, device.shots, generator=device.generator) < 0.5).numpy().astype(np.uint8)  # noqa: E731
        else:
            execute = _pennylane_sampler(device)  # built once per call, not per execution
        while sum(s.shape[-1] for s in streams) * N_QUBITS < raw_bits:
            streams.append(execute())
            executions += 1
        return np.concatenate(streams, axis=1), {"executions": executions, "shots_per_execution": device.shots, "job_ids": []}
    circuit = device._transpile(hadamard_circuit())
    p1 = exact_p1(device, circuit) if isinstance(device, EmulatorDevice) else None
    while sum(s.shape[-1] for s in streams) * N_QUBITS < raw_bits:
        if p1 is not None:
            rng = np.random.default_rng([device.seed, device.calls])
            device.calls += 1
            streams.append((rng.random((N_QUBITS, device.shots)) < p1[:, None]).astype(np.uint8))
            executions += 1
            continue
        bits, meta = device._execute([circuit], [np.zeros((1, 0))])
        shots = bits[0].to_bool_array(order="little")[..., :N_QUBITS]  # (1, shots, 12)
        streams.append(shots.reshape(-1, N_QUBITS).T.astype(np.uint8))
        executions += 1
        job_ids += meta.get("job_ids", [])
    raw = np.concatenate(streams, axis=1)
    return raw, {"executions": executions, "shots_per_execution": device.shots, "job_ids": job_ids}


def extract(raw: np.ndarray, extractor: str = "von-neumann") -> tuple[np.ndarray, np.ndarray]:
    """The pool's bits from raw per-qubit streams (12, M): each stream extracted on its own (or kept as it
    is with ``extractor`` "none"), then concatenated; and per qubit the counts (raw bits, raw ones, output
    bits, output ones) (12, 4) that :func:`bias_table` summarises. :class:`UsageError` for an unknown extractor."""
    if extractor not in EXTRACTORS:
        raise UsageError(f"unknown extractor '{extractor}'; valid: {', '.join(EXTRACTORS)}")
    out, counts = [], []
    for stream in raw:
        done = von_neumann(stream) if extractor == "von-neumann" else stream
        counts.append((len(stream), int(stream.sum()), len(done), int(done.sum())))
        out.append(done)
    return np.concatenate(out), np.array(counts, dtype=np.int64)


def bias_table(counts: np.ndarray) -> list[dict]:
    """Per qubit, from summed :func:`extract` counts: P(1) and min-entropy per bit before and after extraction."""
    rows = []
    for q, (n_raw, ones_raw, n_out, ones_out) in enumerate(counts.tolist()):
        p_raw, p_out = ones_raw / n_raw, ones_out / max(n_out, 1)
        rows.append({"qubit": q, "p1_raw": p_raw, "min_entropy_raw": min_entropy(p_raw), "p1_out": p_out,
                     "min_entropy_out": min_entropy(p_out), "yield": n_out / n_raw})  # fmt: skip
    return rows



def write_pool(path: Path, bits: np.ndarray, provenance: dict) -> None:
    """Write the pool file (atomic): ``bits`` (K,) 0/1 packed little-endian, and its provenance."""
    record = {"format": FORMAT, "n_bits": int(len(bits)), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              **provenance}  # fmt: skip
    packed = np.packbits(bits.astype(np.uint8), bitorder="little")
    atomic_write(path, lambda fh: np.savez_compressed(fh, bits=packed, n_bits=np.array(len(bits)), provenance=json.dumps(record)))


class Pool:
    """A pool file opened read-only: ``n_bits``, ``provenance`` and :meth:`gaussians`. :class:`PoolError`
    for a missing, unreadable or foreign file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise PoolError(f"noise pool {self.path} does not exist; draw one with `nisqdiff qrng --out {self.path}`")
        try:
            with np.load(self.path) as data:
                self.provenance = json.loads(str(data["provenance"]))
                self.n_bits = int(data["n_bits"])
                self._packed = data["bits"]
        except Exception as exc:  # noqa: BLE001 - a truncated zip, a pickle, another npz
            raise PoolError(f"noise pool {self.path} is unreadable ({type(exc).__name__}); draw it again with `nisqdiff qrng`") from None
        if self.provenance.get("format") != FORMAT:
            raise PoolError(f"{self.path} is not a nisqdiff noise pool (format {self.provenance.get('format')!r}, expected {FORMAT})")

    @property
    def capacity(self) -> int:
        """Gaussians the pool holds (32 bits each)."""
        return self.n_bits // WORD

    def gaussians(self, start: int, count: int) -> torch.Tensor:
        """Gaussians start..start+count-1 (count,) float32 (see the module doc); :class:`PoolError` past the end."""
        if start + count > self.capacity:
            raise PoolError(f"noise pool {self.path} holds {self.capacity:,} Gaussians; {start + count:,} were asked for")
        words = np.frombuffer(self._packed[start * 4 : (start + count) * 4].tobytes(), dtype="<u4").astype(np.float64)
        u = torch.from_numpy((words + 0.5) / 2.0**32)
        return torch.special.ndtri(u).float()

    def reserve(self, run: str, count: int) -> int:
        """The first Gaussian of ``run``'s range of ``count`` (a new range after every other run's, or
        the range ``run`` reserved before), recorded in the ledger. :class:`PoolError` when too few remain."""
        from filelock import FileLock

        ledger_path = Path(str(self.path) + ".ledger.json")
        with FileLock(str(ledger_path) + ".lock"):
            ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {"reservations": []}
            for r in ledger["reservations"]:
                if r["run"] == run:
                    if r["count"] < count:
                        raise PoolError(f"{run} reserved {r['count']:,} Gaussians of {self.path} and now needs {count:,}")
                    return r["start"]
            start = sum(r["count"] for r in ledger["reservations"])
            if start + count > self.capacity:
                left = max(self.capacity - start, 0)
                raise PoolError(f"this run needs {count * WORD:,} bits of noise; {self.path} has {left * WORD:,} left "
                                f"(of {self.n_bits:,}): draw a larger pool with `nisqdiff qrng --bits {count * WORD}`")  # fmt: skip
            ledger["reservations"].append({"run": run, "start": start, "count": count,
                                           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})  # fmt: skip
            atomic_write_text(ledger_path, json.dumps(ledger, indent=1) + "\n")
        return start


class PoolNoise:
    """A stream of N(0, 1) noise from ``pool`` from Gaussian ``start`` on, with the ``randn(shape)`` of a
    torch generator: what the samplers and the training loss draw their noise from."""

    def __init__(self, pool: Pool, start: int, count: int):
        self.pool, self.pos, self.end = pool, start, start + count

    def randn(self, shape) -> torch.Tensor:
        n = int(np.prod(shape))
        if self.pos + n > self.end:
            raise PoolError(f"the run used up its {self.end:,}-Gaussian range of {self.pool.path}")
        out = self.pool.gaussians(self.pos, n).reshape(shape)
        self.pos += n
        return out


def check_source(text: str) -> Path | None:
    """``--noise-source`` checked without reading the pool: None for "pseudo", the pool's path for
    "pool:PATH"; :class:`UsageError` for anything else, :class:`PoolError` for a missing file."""
    if text == "pseudo":
        return None
    if not (text.startswith("pool:") and text[5:]):
        raise UsageError(f"--noise-source takes pseudo or pool:PATH (a pool from `nisqdiff qrng`), got {text!r}")
    path = Path(text[5:])
    if not path.is_file():
        raise PoolError(f"noise pool {path} does not exist; draw one with `nisqdiff qrng --out {path}`")
    return path


def parse_source(text: str) -> Pool | None:
    """``--noise-source``: "pseudo" (torch's generator: None) or "pool:PATH" (the opened :class:`Pool`)."""
    path = check_source(text)
    return Pool(path) if path is not None else None
