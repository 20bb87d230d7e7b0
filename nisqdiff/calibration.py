"""Calibration snapshots of IBM devices and noise models built from them.

A snapshot is a JSON file: device name, origin and calibration date, qubit count, basis gates,
per-qubit T1/T2 (s) and asymmetric readout errors, and per-gate error and duration (s) on every
qubit or coupled pair. Built-in snapshots live in the repository's ``calibration/`` folder (installed
as ``nisqdiff/calibrations``; exported from qiskit-ibm-runtime's fake backends by ``nisqdiff calibration
pull --backend fake_kyiv --out calibration --name fake_kyiv``); ``nisqdiff calibration pull`` saves fresh ones from a live account
into the user's folder (:func:`user_calibration_dir`), where they are found by name too.

:func:`noise_model` turns a snapshot into a Qiskit Aer ``NoiseModel`` with a ``scale`` knob that
multiplies every error rate: gate errors, readout error probabilities and relaxation rates (T1 and T2
divided by ``scale``). Scale 0 is the ideal device, 1 the calibration, 2 twice as bad. Gate errors
follow Aer's own device model (``basic_device_gate_errors``: thermal relaxation over the gate's
duration plus the depolarizing part that brings the gate error to the calibrated value).
"""

from __future__ import annotations

import json
import os
import statistics
from importlib import resources
from pathlib import Path

from .errors import CalibrationError, UsageError

SNAPSHOT_KEYS = ("name", "calibration_date", "num_qubits", "basis_gates", "qubits", "gates")
MAX_NOISE_SCALE = 10.0
SKIP_OPS = {"delay", "reset", "for_loop", "if_else", "switch_case", "while_loop", "id", "measure"}


def calibration_dir() -> Path:
    """The built-in snapshots (``calibration/`` of the repository, ``nisqdiff/calibrations`` installed)."""
    return Path(str(resources.files("nisqdiff") / "calibrations"))


def user_calibration_dir() -> Path:
    """Where ``nisqdiff calibration pull`` saves: $NISQDIFF_CALIBRATIONS, else
    $XDG_DATA_HOME/nisqdiff/calibration (default ~/.local/share/nisqdiff/calibration)."""
    if os.environ.get("NISQDIFF_CALIBRATIONS"):
        return Path(os.environ["NISQDIFF_CALIBRATIONS"])
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "nisqdiff" / "calibration"


def list_calibrations() -> list[str]:
    """Names of the built-in and the user's pulled snapshots."""
    return sorted({p.stem for d in (calibration_dir(), user_calibration_dir()) for p in d.glob("*.json")})


def load_calibration(name: str) -> dict:
    """The snapshot called ``name`` (the user's pulled ones first, then built-in) or stored at path
    ``name``; raises :class:`CalibrationError` listing the valid names when there is none."""
    path = Path(name)
    if not path.is_file():
        path = user_calibration_dir() / f"{name}.json"
    if not path.is_file():
        path = calibration_dir() / f"{name}.json"
    if not path.is_file():
        raise CalibrationError(f"unknown calibration {name!r}; valid: {', '.join(list_calibrations())} (or a snapshot file)")
    from .files import read_json

    snap = read_json(path, CalibrationError, "calibration snapshot")
    missing = [k for k in SNAPSHOT_KEYS if not isinstance(snap, dict) or k not in snap]
    if missing:
        raise CalibrationError(f"calibration snapshot {path} lacks {', '.join(missing)}; pull it again")
    return snap


def pull_calibration(backend_name: str, out_dir: str | os.PathLike | None = None, name: str | None = None) -> Path:
    """Save the current calibration of ``backend_name`` as a snapshot and return its path.

    A live backend needs the saved IBM Quantum account (see :func:`nisqdiff.backends.resolve_backend`,
    whose errors it raises); a ``fake_*`` name exports that fake backend offline. The file is
    ``out_dir`` (default :func:`user_calibration_dir`) / ``name`` (default ``<backend>-<date>``) .json,
    written atomically."""
    import datetime as dt

    import qiskit_ibm_runtime

    from .backends import resolve_backend
    from .files import atomic_write_text, check_name, check_writable

    if name is not None:
        check_name(name)
    if out_dir is not None:
        check_writable(out_dir)
    backend, _, local = resolve_backend(backend_name)
    if not local and hasattr(backend, "refresh"):
        backend.refresh()
    where = "fake backend" if local else "live backend"
    today = dt.date.today().isoformat()
    snap = snapshot_from_backend(
        backend, f"{where} {backend.name}, qiskit-ibm-runtime {qiskit_ibm_runtime.__version__}, pulled {today}"
    )
    name = check_name(name or f"{backend.name}-{(snap['calibration_date'] or today)[:10]}")
    snap["name"] = name
    path = Path(out_dir or user_calibration_dir()) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(snap, indent=1) + "\n")
    return path


def snapshot_from_backend(backend, origin: str) -> dict:
    """Export a BackendV2's calibration (target and properties) as a snapshot dict."""
    target = backend.target
    props = backend.properties() if hasattr(backend, "properties") else None
    qubits = []
    for q in range(target.num_qubits):
        qp = target.qubit_properties[q] if target.qubit_properties else None
        meas = target["measure"].get((q,)) if "measure" in target.operation_names else None
        p10 = p01 = meas.error if meas is not None and meas.error is not None else 0.0
        if props is not None:
            values = {p.name: p.value for p in props.qubits[q]}
            p10 = values.get("prob_meas1_prep0", p10)
            p01 = values.get("prob_meas0_prep1", p01)
        qubits.append(
            {
                "t1": getattr(qp, "t1", None),
                "t2": getattr(qp, "t2", None),
                "prob_meas1_prep0": p10,
                "prob_meas0_prep1": p01,
                "readout_duration": meas.duration if meas is not None else None,
            }
        )
    gates = []
    for name in sorted(target.operation_names):
        if name in SKIP_OPS:
            continue
        for qargs, ip in target[name].items():
            if qargs is None:
                continue
            gates.append({"name": name, "qubits": list(qargs), "error": getattr(ip, "error", None) or 0.0,
                          "duration": getattr(ip, "duration", None) or 0.0})  # fmt: skip
    date = props.last_update_date.isoformat() if props is not None and props.last_update_date else None
    return {
        "name": backend.name,
        "origin": origin,
        "calibration_date": date,
        "num_qubits": target.num_qubits,
        "basis_gates": sorted({g["name"] for g in gates}),
        "qubits": qubits,
        "gates": gates,
    }


def readout_probs(qubit: dict, scale: float = 1.0) -> tuple[float, float]:
    """(P(1|0), P(0|1)) of a snapshot qubit with its rates multiplied by ``scale`` (capped at 1)."""
    return min(qubit["prob_meas1_prep0"] * scale, 1.0), min(qubit["prob_meas0_prep1"] * scale, 1.0)


def check_noise_scale(scale: float) -> float:
    """``scale`` if it is a finite noise scale in [0, MAX_NOISE_SCALE] (10x the calibration's error
    rates; every rate is capped at its physical limit there), else :class:`~nisqdiff.errors.UsageError`."""
    import math

    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 <= scale <= MAX_NOISE_SCALE):
        raise UsageError(f"--noise-scale must be a number in [0, {MAX_NOISE_SCALE:g}], got {scale}")
    return float(scale)


def readout_errors(snapshot: dict, qubits, scale: float = 1.0) -> list[tuple[float, float]]:
    """[(P(1|0), P(0|1))] of the snapshot's physical ``qubits`` (in that order) at ``scale``: what a
    device needs to emulate or invert readout errors, without reading the snapshot's layout itself."""
    return [readout_probs(snapshot["qubits"][q], scale) for q in qubits]


def describe(snapshot: dict) -> dict:
    """What identifies a snapshot in a device's settings: its name and calibration date."""
    return {"calibration": snapshot["name"], "calibration_date": snapshot["calibration_date"]}


def coupling_map(snapshot: dict) -> list[list[int]]:
    """Directed pairs on which the snapshot's two-qubit gate is calibrated."""
    return [g["qubits"] for g in snapshot["gates"] if len(g["qubits"]) == 2]


def target(snapshot: dict, scale: float = 1.0):
    """A Qiskit ``Target`` of the snapshot, every error rate multiplied by ``scale`` (T1, T2 divided)."""
    from qiskit.circuit import Measure, Parameter
    from qiskit.circuit.library import CXGate, CZGate, ECRGate, RZGate, SXGate, XGate
    from qiskit.providers import QubitProperties
    from qiskit.transpiler import InstructionProperties, Target

    check_noise_scale(scale)
    ops = {"sx": SXGate(), "x": XGate(), "rz": RZGate(Parameter("lambda")), "ecr": ECRGate(), "cz": CZGate(), "cx": CXGate()}

    def longer(t):
        return None if t is None else (t / scale if scale > 0 else 1e9)

    qprops = [QubitProperties(t1=longer(q["t1"]), t2=longer(q["t2"])) for q in snapshot["qubits"]]
    tgt = Target(num_qubits=snapshot["num_qubits"], qubit_properties=qprops)
    by_name: dict = {}
    for g in snapshot["gates"]:
        if g["name"] not in ops:
            raise CalibrationError(f"snapshot {snapshot['name']} has gate '{g['name']}' nisqdiff cannot model")
        by_name.setdefault(g["name"], {})[tuple(g["qubits"])] = InstructionProperties(
            duration=g["duration"], error=min(g["error"] * scale, 0.75)
        )
    for name, props in by_name.items():
        tgt.add_instruction(ops[name], props)
    readout = {  # symmetric readout error, as IBM reports it; lets layout scoring avoid bad readouts
        (i,): InstructionProperties(duration=q["readout_duration"], error=sum(readout_probs(q, scale)) / 2)
        for i, q in enumerate(snapshot["qubits"])
    }
    tgt.add_instruction(Measure(), readout)
    return tgt


_GATE_ERRORS: dict = {}  # (name, calibration date, qubits, scale) -> gate errors: 2 s to build for 133 qubits


def gate_errors(snapshot: dict, scale: float = 1.0, qubits: tuple[int, ...] | None = None) -> list:
    """[(gate name, qubits, Aer ``QuantumError``)] of the snapshot at ``scale`` (none at 0): Aer's
    ``basic_device_gate_errors`` on :func:`target`, shared by ``aer-noisy`` and the emulator, built
    once per snapshot (name and calibration date), scale and ``qubits`` in a process. ``qubits``
    (physical): only the gates acting within them, each the same error as in the whole device's list
    (Aer builds every gate's error from that gate's and its qubits' properties alone); the whole
    device takes 1-2 s, a circuit's dozen qubits a small fraction of that."""
    if scale == 0:
        return []
    import warnings

    from qiskit_aer.noise.device.models import basic_device_gate_errors

    within = None if qubits is None else frozenset(qubits)
    key = (snapshot["name"], snapshot["calibration_date"], snapshot["num_qubits"], float(scale), within)
    if key not in _GATE_ERRORS:
        part = snapshot if within is None else {**snapshot, "gates": [g for g in snapshot["gates"] if set(g["qubits"]) <= within]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _GATE_ERRORS[key] = basic_device_gate_errors(target=target(part, scale))
    return _GATE_ERRORS[key]


def noise_model(snapshot: dict, scale: float = 1.0):
    """Aer ``NoiseModel`` of the snapshot at ``scale`` (an empty one, the ideal device, at 0)."""
    from qiskit_aer.noise import NoiseModel, ReadoutError

    model = NoiseModel(basis_gates=snapshot["basis_gates"])
    if scale == 0:
        return model
    for name, qubits, error in gate_errors(snapshot, scale):
        model.add_quantum_error(error, name, qubits)
    for i, q in enumerate(snapshot["qubits"]):
        p10, p01 = readout_probs(q, scale)
        if p10 or p01:
            model.add_readout_error(ReadoutError([[1 - p10, p10], [p01, 1 - p01]]), [i])
    return model


def circuit_stats(circuit, snapshot: dict | None = None) -> dict:
    """Statistics of a transpiled circuit: physical qubits of the logical ones (final layout), two-qubit
    gate count and depth, total depth and, with a snapshot, the estimated success probability
    (product of (1 - error) over every gate and of (1 - mean readout error) over measured qubits)."""
    two_q = [inst for inst in circuit.data if inst.operation.num_qubits == 2]
    stats = {
        "two_qubit_gates": len(two_q),
        "two_qubit_depth": circuit.depth(lambda inst: inst.operation.num_qubits == 2),
        "depth": circuit.depth(),
    }
    if circuit.layout is not None:
        stats["physical_qubits"] = circuit.layout.final_index_layout()
    if snapshot is not None:
        errors = {(g["name"], tuple(g["qubits"])): g["error"] for g in snapshot["gates"]}
        p = 1.0
        for inst in circuit.data:
            qubits = tuple(circuit.find_bit(q).index for q in inst.qubits)
            if inst.operation.name == "measure":
                p *= 1 - sum(readout_probs(snapshot["qubits"][qubits[0]])) / 2
            else:
                p *= 1 - errors.get((inst.operation.name, qubits), 0.0)
        stats["success_probability"] = p
    return stats


def _quantities(snapshot: dict, qubits: list[int]) -> dict[str, tuple[list[float], str]]:
    """Per quantity of :func:`diff_snapshots`: its values on ``qubits`` and which end is worst."""
    chosen = set(qubits)
    q = [snapshot["qubits"][i] for i in qubits]
    rows = {
        "T1 (us)": ([x["t1"] * 1e6 for x in q if x["t1"]], "min"),
        "T2 (us)": ([x["t2"] * 1e6 for x in q if x["t2"]], "min"),
        "readout error": ([sum(readout_probs(x)) / 2 for x in q], "max"),
    }
    for gate in snapshot["basis_gates"]:
        values = [g["error"] for g in snapshot["gates"] if g["name"] == gate and set(g["qubits"]) <= chosen]
        if values:
            rows[f"{gate} error"] = (values, "max")
    return rows


def diff_snapshots(a: dict, b: dict, qubits: list[int] | None = None) -> list[dict]:
    """What changed between snapshots ``a`` and ``b`` on ``qubits`` (physical; None: all qubits both
    have): per quantity (T1, T2 in us, mean readout error, each basis gate's error on gates within the
    qubits) the median and the worst value (lowest T1/T2, highest error) of each. Raises
    :class:`~nisqdiff.errors.UsageError` for a qubit either snapshot lacks."""
    n = min(a["num_qubits"], b["num_qubits"])
    qubits = list(range(n)) if qubits is None else list(qubits)
    if bad := [q for q in qubits if not 0 <= q < n]:
        raise UsageError(f"--qubits {bad} not on both snapshots (qubits 0..{n - 1})")
    qa, qb = _quantities(a, qubits), _quantities(b, qubits)
    rows = []
    for name in [k for k in qa if k in qb]:
        (va, worst), (vb, _) = qa[name], qb[name]
        if not va or not vb:
            continue
        pick = min if worst == "min" else max
        rows.append({"quantity": name, "median_a": statistics.median(va), "median_b": statistics.median(vb),
                     "worst_a": pick(va), "worst_b": pick(vb)})  # fmt: skip
    return rows
